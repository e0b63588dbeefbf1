// Model families of this group: header includes (owned by the group).
#include "factor/bpr.h"
#include "factor/mf.h"
#include "factor/nmf.h"
