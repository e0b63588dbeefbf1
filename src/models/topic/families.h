// Model families of this group: header includes (owned by the group).
#include "topic/lda.h"
#include "topic/lda_content.h"
