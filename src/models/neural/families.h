// Model families of this group: header includes (owned by the group).
#include "neural/ncf.h"
