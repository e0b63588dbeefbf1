// Model families of this group: header includes (owned by the group).
#include "ranking/two_stage.h"
