// Build identity, baked in at configure time.
#pragma once

namespace recforge {

const char* Version();    // semantic version, e.g. "0.1.0"
const char* GitCommit();  // short commit hash of the build tree, or "unknown"

}  // namespace recforge
