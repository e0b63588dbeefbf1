// Model families of this group: header includes (owned by the group).
#include "sequence/sasrec.h"
