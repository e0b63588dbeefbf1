// Model families of this group: header includes (owned by the group).
#include "embedding/item2vec.h"
