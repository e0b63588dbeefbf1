// recforge data ingest|prepare|describe|synth|export
#include <fmt/format.h>

#include <chrono>
#include <iostream>

#include "cli_common.h"
#include "tracking_cli.h"
#include "recforge/core/error.h"
#include "recforge/data/describe.h"
#include "recforge/data/export.h"
#include "recforge/data/ingest.h"
#include "recforge/data/prepare.h"
#include "recforge/data/synth.h"

namespace recforge::cli {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// ---- ingest -------------------------------------------------------------------------

// Where interactions come from and how to parse them: shared by `ingest` and by
// `prepare`, which also accepts raw files.
struct SourceArgs {
  std::string format = "auto";
  std::string delimiter;
  std::string has_header;  // "", "yes", "no"
  std::string columns;
  std::string time_format = "auto";
  std::vector<std::string> metadata;
  bool no_metadata = false;
  std::uint64_t max_errors = 1000;
};

struct IngestArgs {
  std::vector<std::string> inputs;
  std::string output;
  SourceArgs source;
  bool json = false;
};

char ParseDelimiter(const std::string& text) {
  if (text == "tab" || text == "\\t" || text == "\t") return '\t';
  if (text == "comma") return ',';
  if (text == "semicolon") return ';';
  if (text == "pipe") return '|';
  if (text == "space") return ' ';
  if (text.size() == 1) return text[0];
  throw InvalidArgument(fmt::format(
      "--delimiter '{}' must be one character or one of: tab, comma, semicolon, pipe, space", text));
}

data::IngestOptions ToIngestOptions(const SourceArgs& args) {
  data::IngestOptions options;
  options.format = data::ParseInputFormat(args.format);
  if (!args.delimiter.empty()) options.delimiter = ParseDelimiter(args.delimiter);
  if (args.has_header == "yes") options.has_header = true;
  if (args.has_header == "no") options.has_header = false;
  if (!args.columns.empty()) options.columns = data::ColumnSpec::Parse(args.columns);
  options.time_format = data::ParseTimeFormat(args.time_format);
  for (const auto& path : args.metadata) options.metadata.emplace_back(path);
  options.find_metadata = !args.no_metadata;
  options.max_errors = args.max_errors;
  return options;
}

void AddSourceOptions(CLI::App* cmd, SourceArgs& args) {
  cmd->add_option("--format,-f", args.format,
                  "auto|movielens|amazon-2023|amazon-2023-csv|amazon-2018|amazon-ratings-csv|netflix|csv");
  cmd->add_option("--delimiter", args.delimiter, "Generic CSV: one character, or tab|comma|semicolon|pipe|space");
  cmd->add_option("--has-header", args.has_header, "Generic CSV: yes|no (default: detected)")
      ->check(CLI::IsMember({"yes", "no"}));
  cmd->add_option("--columns", args.columns,
                  "Generic CSV: user=COL,item=COL[,rating=COL][,time=COL] by header name or 0-based index");
  cmd->add_option("--time-format", args.time_format, "auto|unix-s|unix-ms|iso8601|YYYY-MM-DD");
  cmd->add_option("--metadata,-m", args.metadata, "Item metadata files (u.item, movies.csv, meta_*.jsonl, ...)")
      ->check(CLI::ExistingFile);
  cmd->add_flag("--no-metadata", args.no_metadata, "Do not look for metadata files beside the inputs");
  cmd->add_option("--max-errors", args.max_errors, "Abort when more lines are malformed (0 = strict)");
}

int RunIngest(const IngestArgs& args, const GlobalOptions& globals) {
  Session session(globals);
  data::IngestOptions options = ToIngestOptions(args.source);
  std::vector<fs::path> inputs(args.inputs.begin(), args.inputs.end());

  auto start = Clock::now();
  data::Dataset dataset = data::Ingest(inputs, options, session.ctx());
  double parse_seconds = Seconds(start);
  data::SaveDataset(dataset, args.output);
  session.FinishProgress();
  double total_seconds = Seconds(start);
  const auto& counts = dataset.meta["counts"];
  session.log().Info("wrote {}: {} rows, {} users, {} items, {} malformed lines ({:.2f}s parse, {:.2f}s total)",
                     args.output, counts["rows"].get<std::uint64_t>(), dataset.n_users(), dataset.n_items(),
                     dataset.meta["parse_errors"]["total"].get<std::uint64_t>(), parse_seconds, total_seconds);
  if (args.json) {
    nlohmann::json report = {{"output", args.output},
                             {"rows", counts["rows"]},
                             {"interactions", counts["interactions"]},
                             {"users", dataset.n_users()},
                             {"items", dataset.n_items()},
                             {"items_with_metadata", dataset.item_info.size()},
                             {"parse_errors", dataset.meta["parse_errors"]},
                             {"sources", dataset.meta["sources"]},
                             {"seconds", total_seconds}};
    PrintJson(report);
  }
  return 0;
}

void AddIngest(CLI::App& data, GlobalOptions& globals, CommandBody& selected) {
  auto args = std::make_shared<IngestArgs>();
  CLI::App* cmd = data.add_subcommand("ingest", "Read raw interaction files into a dataset directory");
  cmd->add_option("inputs", args->inputs, "Interaction files (several merge into one dataset; .gz ok)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--output,-o", args->output, "Dataset directory to write")->required();
  AddSourceOptions(cmd, args->source);
  cmd->add_flag("--json", args->json, "Print a JSON report on stdout");
  cmd->callback([args, &globals, &selected] { selected = [args, &globals] { return RunIngest(*args, globals); }; });
}

// ---- prepare ------------------------------------------------------------------------

struct PrepareArgs {
  std::vector<std::string> inputs;
  std::string output;
  SourceArgs source;
  std::string dedup = "last", split = "temporal", cold = "keep";
  std::optional<float> min_rating, implicit_threshold;
  std::uint32_t min_user = 0, min_item = 0, last_n = 5, val_n = 0;
  double test_ratio = 0.2, val_ratio = 0.0;
  std::uint64_t seed = 42;
  bool json = false;
  TrackingArgs tracking;
};

// Records the prepared dataset in the run: lineage raw files / raw dataset -> prepared
// dataset (by content hash), both datasets, meta.json as an artifact.
void RecordPrepared(TrackedRun& run, const PrepareArgs& args, const data::PrepareOptions& options) {
  if (!run.enabled()) return;
  const nlohmann::json meta = data::ReadMeta(args.output);
  const std::string hash = meta.value("content_hash", std::string());
  const nlohmann::json parent = meta.value("parent", nlohmann::json::object());
  const std::string parent_hash = parent.value("content_hash", std::string());
  nlohmann::json sources = parent.value("sources", nlohmann::json::array());
  const bool input_is_dir = args.inputs.size() == 1 && fs::is_directory(args.inputs[0]);
  for (const auto& source : sources) {
    run.Lineage("input", "raw_file", source.value("sha256", std::string()), source.value("file", std::string()));
  }
  if (!parent_hash.empty()) {
    run.Lineage("input", "dataset", parent_hash, input_is_dir ? args.inputs[0] : std::string());
    tracking::DatasetRecord raw;
    raw.hash = parent_hash;
    raw.kind = "raw";
    raw.path = input_is_dir ? fs::absolute(args.inputs[0]).string() : std::string();
    raw.counts = {{"interactions", parent.value("rows", nlohmann::json())},
                  {"users", parent.value("n_users", nlohmann::json())},
                  {"items", parent.value("n_items", nlohmann::json())}};
    raw.parameters = {{"sources", sources}};
    run.Dataset(raw);
  }
  nlohmann::json split = meta.value("split", nlohmann::json::object());
  tracking::DatasetRecord prepared;
  prepared.hash = hash;
  prepared.kind = "prepared";
  prepared.path = fs::absolute(args.output).string();
  prepared.counts = {{"users", meta.value("n_users", nlohmann::json())},
                     {"items", meta.value("n_items", nlohmann::json())},
                     {"parts", {{"train", split.value("train_rows", nlohmann::json())},
                                {"val", split.value("val_rows", nlohmann::json())},
                                {"test", split.value("test_rows", nlohmann::json())}}}};
  prepared.parameters = {{"prepare", options.ToJson()}, {"parent_content_hash", parent_hash}, {"sources", sources}};
  run.Dataset(prepared);
  run.Lineage("output", "prepared", hash, args.output);
  // The same input (by content) and options give the same prepared dataset.
  nlohmann::json config = {{"prepare", options.ToJson()}, {"parent", parent_hash}};
  if (parent_hash.empty()) config["sources"] = sources;
  run.Tags({{"dataset_hash", hash}, {"config_id", ConfigId(config.dump())}});
  run.Artifact(fs::path(args.output) / "meta.json", "meta.json", "dataset_meta");
}

int RunPrepare(const PrepareArgs& args, const GlobalOptions& globals, TrackedRun& run) {
  Session session(globals);
  data::PrepareOptions options;
  options.dedup = data::ParseDedupPolicy(args.dedup);
  options.split = data::ParseSplitStrategy(args.split);
  options.cold = data::ParseColdPolicy(args.cold);
  options.min_rating = args.min_rating;
  options.implicit_threshold = args.implicit_threshold;
  options.min_user = args.min_user;
  options.min_item = args.min_item;
  options.last_n = args.last_n;
  options.val_n = args.val_n;
  options.test_ratio = args.test_ratio;
  options.val_ratio = args.val_ratio;
  options.seed = args.seed;
  options.Validate();
  run.Params(FlattenParams(options.ToJson()));
  {
    std::string inputs;
    for (const auto& input : args.inputs) inputs += (inputs.empty() ? "" : " ") + input;
    run.Params({{"inputs", inputs}, {"output", args.output}});
  }

  auto start = Clock::now();
  std::vector<fs::path> inputs(args.inputs.begin(), args.inputs.end());
  data::Dataset dataset = data::IngestOrLoad(inputs, ToIngestOptions(args.source), session.ctx());
  double load_seconds = Seconds(start);
  data::PreparedDataset prepared = data::Prepare(std::move(dataset), options, session.ctx());
  data::SavePrepared(prepared, args.output);
  session.FinishProgress();
  double total_seconds = Seconds(start);
  session.log().Info("wrote {}: train {} / val {} / test {} rows, {} users, {} items ({:.2f}s load, {:.2f}s total)",
                     args.output, prepared.train.size(), prepared.val ? prepared.val->size() : 0,
                     prepared.test.size(), prepared.users.size(), prepared.items.size(), load_seconds,
                     total_seconds);
  RecordPrepared(run, args, options);
  run.Metrics({{"train_rows", static_cast<double>(prepared.train.size())},
               {"val_rows", static_cast<double>(prepared.val ? prepared.val->size() : 0)},
               {"test_rows", static_cast<double>(prepared.test.size())},
               {"users", static_cast<double>(prepared.users.size())},
               {"items", static_cast<double>(prepared.items.size())},
               {"load_seconds", load_seconds},
               {"duration_seconds", total_seconds}});
  if (args.json) {
    nlohmann::json report = prepared.meta;
    report["output"] = args.output;
    report["train_rows"] = prepared.train.size();
    report["val_rows"] = prepared.val ? prepared.val->size() : 0;
    report["test_rows"] = prepared.test.size();
    report["seconds"] = total_seconds;
    PrintJson(report);
  }
  return 0;
}

void AddPrepare(CLI::App& data, GlobalOptions& globals, CommandBody& selected) {
  auto args = std::make_shared<PrepareArgs>();
  CLI::App* cmd = data.add_subcommand("prepare", "Dedup, filter and split a dataset into train/val/test");
  cmd->add_option("dataset,--dataset", args->inputs,
                  "A raw dataset directory (from `data ingest`), or raw interaction files to ingest on the fly "
                  "(then the ingest options below apply)")
      ->required();
  cmd->add_option("--output,-o", args->output, "Prepared dataset directory to write")->required();
  cmd->add_option("--dedup", args->dedup, "Repeated (user, item): last|first|max|mean|sum")->capture_default_str();
  cmd->add_option("--min-rating", args->min_rating, "Keep rows with rating >= R");
  cmd->add_option("--implicit-threshold", args->implicit_threshold, "Keep rows with rating >= R, as weight 1");
  cmd->add_option("--min-user", args->min_user, "k-core: minimum interactions per user")->capture_default_str();
  cmd->add_option("--min-item", args->min_item, "k-core: minimum interactions per item")->capture_default_str();
  cmd->add_option("--split", args->split, "temporal|last-n|leave-one-out|ratio|random")->capture_default_str();
  cmd->add_option("--test-ratio", args->test_ratio, "temporal/ratio/random: test fraction")->capture_default_str();
  cmd->add_option("--val-ratio", args->val_ratio, "temporal/ratio/random: validation fraction (0 = no val)")
      ->capture_default_str();
  cmd->add_option("--last-n", args->last_n, "last-n: test rows per user")->capture_default_str();
  cmd->add_option("--val-n", args->val_n, "last-n: validation rows per user")->capture_default_str();
  cmd->add_option("--cold", args->cold, "Test users/items absent from train: keep|drop")->capture_default_str();
  cmd->add_option("--seed", args->seed, "Seed of the random split")->capture_default_str();
  AddSourceOptions(cmd, args->source);
  cmd->add_flag("--json", args->json, "Print a JSON report on stdout");
  AddTrackingOptions(cmd, args->tracking);
  cmd->callback([args, &globals, &selected] {
    selected = [args, &globals] {
      return RunTracked(args->tracking, "preprocessing",
                        [&](TrackedRun& run) { return RunPrepare(*args, globals, run); });
    };
  });
}

// ---- describe -----------------------------------------------------------------------

void AddDescribe(CLI::App& data, GlobalOptions& globals, CommandBody& selected) {
  struct Args {
    std::string dir;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = data.add_subcommand("describe", "Statistics of a raw or prepared dataset");
  cmd->add_option("dataset", args->dir, "Dataset directory")->required();
  cmd->add_flag("--json", args->json, "Print JSON on stdout");
  cmd->callback([args, &globals, &selected] {
    selected = [args, &globals] {
      Session session(globals);
      nlohmann::json description = data::DescribeDirectory(args->dir, session.ctx());
      session.FinishProgress();
      if (args->json) {
        PrintJson(description);
      } else {
        std::cout << data::FormatDescription(description);
      }
      return 0;
    };
  });
}

// ---- synth --------------------------------------------------------------------------

void AddSynth(CLI::App& data, GlobalOptions& globals, CommandBody& selected) {
  struct Args {
    data::SynthOptions options;
    std::string output;
    std::string format = "dataset";
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = data.add_subcommand("synth", "Generate a deterministic synthetic dataset");
  auto& o = args->options;
  cmd->add_option("--output,-o", args->output, "Dataset directory (or text file for --format csv|tsv|...)")
      ->required();
  cmd->add_option("--format", args->format, "dataset|csv|tsv|amazon-2023-jsonl")
      ->capture_default_str();
  cmd->add_option("--interactions,-n", o.interactions, "Distinct (user, item) pairs")->capture_default_str();
  cmd->add_option("--users", o.users, "Users")->capture_default_str();
  cmd->add_option("--items", o.items, "Items")->capture_default_str();
  cmd->add_option("--categories", o.categories, "Item categories")->capture_default_str();
  cmd->add_option("--factors", o.factors, "Latent dimension of the planted structure")->capture_default_str();
  cmd->add_option("--zipf", o.zipf, "Zipf exponent of item popularity")->capture_default_str();
  cmd->add_option("--candidates", o.candidates, "Popularity draws per interaction (best affinity wins)")
      ->capture_default_str();
  cmd->add_option("--start-time", o.start_time, "First timestamp (Unix seconds)")->capture_default_str();
  cmd->add_option("--time-span", o.time_span, "Seconds covered by the timestamps")->capture_default_str();
  cmd->add_option("--seed", o.seed, "Seed")->capture_default_str();
  cmd->add_flag("--json", args->json, "Print a JSON report on stdout");
  cmd->callback([args, &globals, &selected] {
    selected = [args, &globals] {
      Session session(globals);
      args->options.Validate();
      auto start = Clock::now();
      nlohmann::json report = {{"output", args->output}, {"format", args->format},
                               {"parameters", args->options.ToJson()}};
      if (args->format != "dataset") data::ParseSynthTextFormat(args->format);  // validates the name
      if (args->format == "dataset") {
        data::Dataset dataset = data::Synthesize(args->options, session.ctx());
        data::SaveDataset(dataset, args->output);
        report["rows"] = dataset.interactions.size();
        report["users"] = dataset.n_users();
        report["items"] = dataset.n_items();
      } else {
        data::WriteSynthText(args->options, data::ParseSynthTextFormat(args->format), args->output, session.ctx());
      }
      session.FinishProgress();
      report["seconds"] = Seconds(start);
      session.log().Info("wrote {} ({:.2f}s)", args->output, report["seconds"].get<double>());
      if (args->json) PrintJson(report);
      return 0;
    };
  });
}

// ---- export -------------------------------------------------------------------------

void AddExport(CLI::App& data, GlobalOptions& globals, CommandBody& selected) {
  struct Args {
    std::string dir, output, format = "csv", part;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = data.add_subcommand("export", "Write a dataset back to text with the original ids");
  cmd->add_option("dataset", args->dir, "Dataset directory")->required();
  cmd->add_option("--output,-o", args->output, "Text file to write")->required();
  cmd->add_option("--format", args->format, "csv|tsv")->check(CLI::IsMember({"csv", "tsv"}))->capture_default_str();
  cmd->add_option("--part", args->part, "Prepared datasets: train|val|test")
      ->check(CLI::IsMember({"train", "val", "test"}));
  cmd->callback([args, &globals, &selected] {
    selected = [args, &globals] {
      Session session(globals);
      auto format = data::ParseExportFormat(args->format);
      if (data::IsPreparedDir(args->dir)) {
        if (args->part.empty()) throw InvalidArgument("--part train|val|test is required for a prepared dataset");
        data::PreparedDataset prepared = data::LoadPrepared(args->dir);
        const data::Interactions* part = args->part == "train" ? &prepared.train
                                         : args->part == "test" ? &prepared.test
                                         : prepared.val ? &*prepared.val : nullptr;
        if (part == nullptr) throw NotFound(fmt::format("{}: has no val part", args->dir));
        data::ExportInteractions(*part, prepared.users, prepared.items, format, args->output);
      } else {
        if (!args->part.empty()) throw InvalidArgument("--part applies to prepared datasets only");
        data::Dataset dataset = data::LoadDataset(args->dir);
        data::ExportInteractions(dataset.interactions, dataset.users, dataset.items, format, args->output);
      }
      session.log().Info("wrote {}", args->output);
      return 0;
    };
  });
}

}  // namespace

void RegisterDataCommands(CLI::App& app, GlobalOptions& globals, CommandBody& selected) {
  CLI::App* data = app.add_subcommand("data", "Ingest, prepare, describe, synthesise and export datasets");
  data->require_subcommand(1);
  AddIngest(*data, globals, selected);
  AddPrepare(*data, globals, selected);
  AddDescribe(*data, globals, selected);
  AddSynth(*data, globals, selected);
  AddExport(*data, globals, selected);
}

}  // namespace recforge::cli
