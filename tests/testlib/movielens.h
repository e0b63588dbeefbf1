// The ml-100k splits the real-data tests share (call after RECFORGE_REQUIRE_DATA).
#pragma once

#include "recforge/core/context.h"
#include "recforge/data/dataset.h"

namespace recforge::testing {

// ../shared/PROTOCOL.md on ml-100k u.data: every rating is an interaction; per user the
// last max(1, floor(0.2 n_u)) by (time, item) are test; repeated pairs keep the
// earliest. 80,367 train / 19,633 test rows.
data::PreparedDataset Ml100kProtocolSplit(const Context& ctx);

// u1.base as train and u1.test as test (80,000 / 20,000 rows), ingested together so both
// files share one id space; rows are told apart by meta["sources"][k]["rows"] (the
// ingest keeps the inputs' order).
data::PreparedDataset Ml100kU1Split(const Context& ctx);

}  // namespace recforge::testing
