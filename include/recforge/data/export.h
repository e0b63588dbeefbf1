// `recforge data export`: a dataset (or one part of a prepared one) back to text,
// with the original ids.
#pragma once

#include <string_view>

#include "recforge/core/context.h"
#include "recforge/data/dataset.h"

namespace recforge::data {

enum class ExportFormat { kCsv, kTsv };
ExportFormat ParseExportFormat(std::string_view name);

// Writes a header `user_id,item_id,rating,timestamp` (csv) or the same names with
// tabs (tsv), then one row per interaction in stored order. Ratings print in the
// shortest form that round-trips (4, 3.5); ids are quoted in CSV when they contain
// the delimiter, a quote or a newline. TSV has no quoting, so an id containing a tab
// or a line break is refused (InvalidArgument suggesting csv).
void ExportInteractions(const Interactions& interactions, const IdMap& users, const IdMap& items,
                        ExportFormat format, const fs::path& path);

}  // namespace recforge::data
