// Item metadata readers: MovieLens u.item / movies.dat / movies.csv, Amazon 2023 meta
// JSONL (.gz), Netflix movie_titles, Last.fm artists.dat. Metadata files are small
// next to interaction logs and are read on one thread.
#pragma once

#include <optional>
#include <vector>

#include "recforge/core/context.h"
#include "recforge/data/dataset.h"
#include "recforge/data/ingest.h"

namespace recforge::data {

// Reads item metadata, detecting the file kind from its name and first line.
// Malformed lines are counted into `errors` (with file:line examples) and skipped.
// Throws IoError / FormatError for an unreadable or unrecognised file.
std::vector<ItemInfo> ReadItemMetadata(const fs::path& path, ErrorTally& errors, std::size_t max_examples);

// The usual metadata file beside an interaction file, if it exists:
// u.data -> u.item, ratings.dat -> movies.dat, ratings.csv -> movies.csv,
// X.jsonl[.gz] -> meta_X.jsonl[.gz], Netflix -> movie_titles.{txt,csv},
// user_artists.dat -> artists.dat.
std::optional<fs::path> FindMetadataFor(const fs::path& interactions_file, InputFormat format);

}  // namespace recforge::data
