// Model families of this group: header includes (owned by the group).
#include "factor/als.h"
#include "factor/ials.h"
#include "factor/svd.h"
