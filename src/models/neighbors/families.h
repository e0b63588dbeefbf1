// Model families of this group: header includes (owned by the group).
#include "neighbors/assoc.h"
#include "neighbors/item_knn.h"
#include "neighbors/user_knn.h"
