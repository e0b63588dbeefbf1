// recforge evaluate | baselines
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>

#include "cli_common.h"
#include "tracking_cli.h"
#include "recforge/core/error.h"
#include "recforge/core/file_io.h"
#include "recforge/eval/evaluator.h"
#include "recforge/models/model_io.h"
#include "recforge/models/registry.h"

namespace recforge::cli {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// Options shared by `evaluate` and `baselines`.
struct EvalArgs {
  std::string dataset;
  std::vector<int> ks = {5, 10, 20};
  std::vector<std::string> metrics;
  std::string protocol = "full";
  std::optional<float> relevance_threshold;
  std::string part = "test";
  int bootstrap = 1000;
  std::uint64_t seed = 42;
  bool json = false;
  bool cold_items = false;               // evaluate only: --cold-items
  std::string cold_candidates = "cold";  // evaluate only: --cold-candidates

  eval::EvalOptions ToOptions() const {
    eval::EvalOptions options;
    options.ks = ks;
    options.metrics = metrics;
    auto [protocol_kind, negatives] = eval::EvalOptions::ParseProtocol(protocol);
    options.protocol = protocol_kind;
    if (protocol_kind == eval::Protocol::kSampled) options.sampled_negatives = negatives;
    options.relevance_threshold = relevance_threshold;
    options.part = part;
    options.bootstrap_samples = bootstrap;
    options.seed = seed;
    options.cold_items = cold_items;
    options.cold_candidates = eval::EvalOptions::ParseColdCandidates(cold_candidates);
    options.Validate();
    return options;
  }

  // The evaluation options as run params.
  std::map<std::string, std::string> TrackingParams() const {
    std::string k_list, metric_list;
    for (int k : ks) k_list += (k_list.empty() ? "" : ",") + std::to_string(k);
    for (const auto& metric : metrics) metric_list += (metric_list.empty() ? "" : ",") + metric;
    std::map<std::string, std::string> params = {
        {"dataset", dataset},
        {"k", k_list},
        {"protocol", protocol},
        {"metrics", metric_list.empty() ? std::string("all") : metric_list},
        {"relevance_threshold", relevance_threshold ? fmt::format("{}", *relevance_threshold) : std::string()},
        {"part", part},
        {"bootstrap", std::to_string(bootstrap)},
        {"seed", std::to_string(seed)}};
    if (cold_items) params["cold_items"] = cold_candidates;  // only when asked: old runs keep their keys
    return params;
  }
};

void AddSharedOptions(CLI::App* cmd, EvalArgs& args) {
  cmd->add_option("--dataset,-d", args.dataset, "Prepared dataset directory")->required();
  cmd->add_option(
         "--protocol", args.protocol,
         "full (rank every unseen item), sampled:N (relevant items + N sampled negatives) or "
         "next-item (leave-one-out: history = train + val in time order, rank the held-out item)")
      ->capture_default_str();
  cmd->add_option("--relevance-threshold", args.relevance_threshold,
                  "Test rows with rating >= T are relevant (default: every test row)");
  cmd->add_option("--part", args.part, "Held-out part to evaluate: test|val")
      ->check(CLI::IsMember({"test", "val"}))
      ->capture_default_str();
  cmd->add_option("--seed", args.seed, "Seed of the bootstrap and of negative sampling")
      ->capture_default_str();
  cmd->add_flag("--json", args.json, "Print JSON on stdout");
}

// Loads a model file and gives it the dataset's train part as its history to exclude,
// exactly as `recforge recommend` does, so both rank the same items.
std::unique_ptr<models::Recommender> LoadForDataset(const std::string& path,
                                                    const data::PreparedDataset& prepared,
                                                    const std::string& dataset_dir,
                                                    Session& session) {
  auto model = models::LoadModel(path);
  if (prepared.items.size() != model->n_items() || prepared.users.size() != model->n_users()) {
    throw InvalidArgument(fmt::format(
        "{} has {} users / {} items but the model {} was trained on {} / {}", dataset_dir,
        prepared.users.size(), prepared.items.size(), path, model->n_users(), model->n_items()));
  }
  const std::string dataset_hash = prepared.meta.value("content_hash", std::string());
  if (!model->dataset_hash().empty() && !dataset_hash.empty() &&
      model->dataset_hash() != dataset_hash) {
    session.log().Warn(
        "{} was trained on dataset {} but {} has content hash {}: the metrics may not mean what "
        "you think",
        path, model->dataset_hash(), dataset_dir, dataset_hash);
  }
  models::TrainingData training =
      models::TrainingData::FromPrepared(prepared, session.ctx().threads);
  model->SetSeen(training.user_items);
  return model;
}

std::string FormatValue(double value) {
  return std::isnan(value) ? std::string("-") : fmt::format("{:.4f}", value);
}

// A readable report: header lines, then metric / value / 95% CI.
std::string FormatReport(const eval::EvalReport& report, const std::string& title) {
  std::string out = fmt::format("{}\n", title);
  out += fmt::format(
      "  protocol {}, part {}, {} users evaluated ({} skipped without relevant items), "
      "relevance: {}\n",
      report.protocol, report.part, report.users_evaluated, report.users_skipped,
      report.relevance_threshold ? fmt::format("rating >= {}", *report.relevance_threshold)
                                 : std::string("every held-out row"));
  if (report.next_item) {
    out += fmt::format(
        "  next-item (leave-one-out): history = train{} rows in time order, every other catalog item "
        "ranked; {} users scored from their history, {} from the fitted user\n",
        report.part == "test" ? " + val" : "", report.next_item->from_history,
        report.next_item->from_fitted_user);
  }
  if (report.cold_items) {
    out += fmt::format(
        "  cold items only: {} users with cold {} items, {} distinct cold items relevant; candidates: {}\n",
        report.users_evaluated, report.part, report.cold_items->relevant_cold_items,
        report.cold_items->candidates == "cold"
            ? fmt::format("the {} cold catalog items", report.cold_items->catalog_cold_items)
            : fmt::format("every unseen catalog item ({} of them cold)", report.cold_items->catalog_cold_items));
  }
  std::size_t width = 6;
  for (const auto& key : report.metric_order) width = std::max(width, key.size());
  std::string header =
      fmt::format("  {:<{}}  {:>8}  {}", "metric", width, "value",
                  report.confidence_intervals.empty()
                      ? std::string()
                      : fmt::format("95% CI ({} bootstrap resamples)", report.bootstrap_samples));
  header.erase(header.find_last_not_of(' ') + 1);
  out += header + "\n";
  for (const auto& key : report.metric_order) {
    std::string interval;
    if (auto found = report.confidence_intervals.find(key);
        found != report.confidence_intervals.end()) {
      interval = fmt::format("[{}, {}]", FormatValue(found->second.first),
                             FormatValue(found->second.second));
    }
    std::string line = fmt::format("  {:<{}}  {:>8}  {}", key, width,
                                   FormatValue(report.metrics.at(key)), interval);
    line.erase(line.find_last_not_of(' ') + 1);
    out += line + "\n";
  }
  return out;
}

// ---- evaluate -----------------------------------------------------------------------

struct EvaluateArgs {
  EvalArgs shared;
  std::string model;
  std::vector<std::string> compare;
  std::string per_user;
  TrackingArgs tracking;
};

int RunEvaluate(const EvaluateArgs& args, const GlobalOptions& globals, TrackedRun& run) {
  Session session(globals);
  Context& ctx = session.ctx();
  if (args.model.empty() == args.compare.empty()) {
    throw InvalidArgument("give exactly one of --model FILE and --compare A B");
  }
  if (!args.compare.empty() && !args.per_user.empty()) {
    throw InvalidArgument("--per-user applies to a single --model");
  }
  eval::EvalOptions options = args.shared.ToOptions();
  options.keep_per_user = !args.compare.empty() || !args.per_user.empty();
  {
    auto params = args.shared.TrackingParams();
    if (args.compare.empty()) {
      params["model"] = args.model;
    } else {
      params["model_a"] = args.compare[0];
      params["model_b"] = args.compare[1];
    }
    run.Params(params);
  }

  data::PreparedDataset prepared = data::LoadPrepared(args.shared.dataset);
  const std::string dataset_hash = prepared.meta.value("content_hash", std::string());
  run.Lineage("input", "prepared", dataset_hash, args.shared.dataset);
  std::vector<std::string> paths =
      args.compare.empty() ? std::vector<std::string>{args.model} : args.compare;
  std::vector<std::string> model_hashes;
  std::string families;
  std::vector<eval::EvalReport> reports;
  for (const auto& argument : paths) {
    // A registered model (NAME@ALIAS, NAME/N) is its stored, verified file.
    const std::string path = ResolveModelArgument(argument, args.tracking.uri);
    auto load_start = Clock::now();
    auto model = LoadForDataset(path, prepared, args.shared.dataset, session);
    if (run.enabled()) {
      model_hashes.push_back(Sha256File(path));
      run.Lineage("input", "model", model_hashes.back(), path);
      families += (families.empty() ? "" : ",") + model->family();
      if (paths.size() == 1) {
        // The evaluated model's spec fields, named as in its training run, so runs of
        // both experiments filter and compare on the same keys.
        std::map<std::string, std::string> spec = model->params().values();
        spec["family"] = model->family();
        spec["spec"] = model->Spec();
        run.Params(spec);
      } else {
        run.Param(model_hashes.size() == 1 ? "model_a_spec" : "model_b_spec", model->Spec());
      }
    }
    session.log().Info("evaluating {} ({}) on {} [{}] ({:.2f}s to load the model)", path,
                       model->Spec(), args.shared.dataset, options.ProtocolLabel(),
                       Seconds(load_start));
    reports.push_back(eval::Evaluate(*model, prepared, options, ctx));
    for (const auto& note : reports.back().notes) session.log().Warn("{}", note);
    session.log().Info("evaluated {} users in {:.2f}s", reports.back().users_evaluated,
                       reports.back().seconds);
  }
  session.FinishProgress();
  if (!args.per_user.empty()) {
    eval::WritePerUserCsv(reports[0], prepared.users, args.per_user);
    session.log().Info("wrote {}", args.per_user);
  }

  auto report_json = [&](std::size_t k) {
    nlohmann::json json = reports[k].ToJson();
    json["model_file"] = paths[k];
    json["dataset"] = args.shared.dataset;
    return json;
  };
  if (run.enabled()) {
    std::string config = fmt::format("dataset={}|protocol={}|part={}", dataset_hash, options.ProtocolLabel(),
                                     options.part);
    for (const auto& [key, value] : args.shared.TrackingParams()) config += "|" + key + "=" + value;
    for (const auto& hash : model_hashes) config += "|model=" + hash;
    run.Tags({{"dataset_hash", dataset_hash}, {"config_id", ConfigId(config)}, {"family", families}});
  }
  if (args.compare.empty() && run.enabled()) {
    run.Metrics(reports[0].metrics);
    run.Metrics({{"users_evaluated", static_cast<double>(reports[0].users_evaluated)},
                 {"duration_seconds", reports[0].seconds}});
    const std::string report_sha = run.ArtifactText(report_json(0).dump(2), "report.json", "report");
    run.Lineage("output", "report", report_sha, "report.json");
    if (!args.per_user.empty()) {
      run.Artifact(args.per_user, fs::path(args.per_user).filename().string(), "per_user");
    }
  }
  if (args.compare.empty()) {
    if (args.shared.json) {
      PrintJson(report_json(0));
    } else {
      std::cout << FormatReport(
          reports[0],
          fmt::format("{} ({}) on {}", paths[0], reports[0].model_spec, args.shared.dataset));
    }
    return 0;
  }

  // Paired comparison of every headline metric both reports have.
  const int samples = options.bootstrap_samples;  // 0: no CI of the difference, as asked
  std::vector<eval::PairedComparison> comparisons;
  for (const auto& key : reports[0].headline_metrics) {
    if (!reports[1].metrics.count(key)) continue;
    comparisons.push_back(
        eval::ComparePaired(reports[0], reports[1], key, samples, options.seed, ctx.threads));
  }
  if (run.enabled()) {
    // Both models' metrics side by side ("a_ndcg@10", "b_ndcg@10") and the paired
    // differences ("diff_ndcg@10").
    std::map<std::string, double> metrics;
    for (const auto& [key, value] : reports[0].metrics) metrics["a_" + key] = value;
    for (const auto& [key, value] : reports[1].metrics) metrics["b_" + key] = value;
    for (const auto& comparison : comparisons) metrics["diff_" + comparison.metric] = comparison.mean_difference;
    metrics["duration_seconds"] = reports[0].seconds + reports[1].seconds;
    run.Metrics(metrics);
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& comparison : comparisons) rows.push_back(comparison.ToJson());
    const std::string report_sha = run.ArtifactText(
        nlohmann::json{{"a", report_json(0)}, {"b", report_json(1)}, {"comparisons", rows}}.dump(2),
        "report.json", "report");
    run.Lineage("output", "report", report_sha, "report.json");
  }
  if (args.shared.json) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& comparison : comparisons) rows.push_back(comparison.ToJson());
    PrintJson({{"a", report_json(0)}, {"b", report_json(1)}, {"comparisons", rows}});
    return 0;
  }
  for (std::size_t k = 0; k < 2; ++k) {
    std::cout << FormatReport(reports[k], fmt::format("{}: {} ({})", k == 0 ? "A" : "B", paths[k],
                                                      reports[k].model_spec))
              << "\n";
  }
  std::size_t width = 6;
  for (const auto& comparison : comparisons) width = std::max(width, comparison.metric.size());
  std::cout << fmt::format("paired comparison A - B over users ({} bootstrap resamples)\n",
                           samples);
  std::cout << fmt::format("  {:<{}}  {:>8}  {:>8}  {:>8}  {:<20}  {}\n", "metric", width, "A", "B",
                           "A - B", "95% CI", "p (paired t)");
  for (const auto& c : comparisons) {
    std::cout << fmt::format("  {:<{}}  {:>8}  {:>8}  {:>8}  {:<20}  {:.4g}\n", c.metric, width,
                             FormatValue(c.mean_a), FormatValue(c.mean_b),
                             FormatValue(c.mean_difference),
                             fmt::format("[{}, {}]", FormatValue(c.difference_ci.first),
                                         FormatValue(c.difference_ci.second)),
                             c.p_value);
  }
  return 0;
}

void AddEvaluate(CLI::App& app, GlobalOptions& globals, CommandBody& selected) {
  auto args = std::make_shared<EvaluateArgs>();
  CLI::App* cmd = app.add_subcommand(
      "evaluate",
      "Ranking and rating metrics of a trained model on a prepared dataset's test part");
  cmd->add_option("--model,-m", args->model,
                  "Model file (from `recforge train`), or a registered model NAME@ALIAS / NAME/N");
  cmd->add_option("--compare", args->compare,
                  "Two model files (or NAME@ALIAS / NAME/N) A B: evaluate both, paired comparison")
      ->expected(2);
  AddSharedOptions(cmd, args->shared);
  cmd->add_option("--k,-k", args->shared.ks, "Cut-offs, comma-separated")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--metrics", args->shared.metrics,
                  "Comma-separated subset of: precision, recall, ndcg, map, mrr, hit_rate, auc, "
                  "coverage, novelty, diversity, rmse, mae (default: every applicable one)")
      ->delimiter(',');
  cmd->add_option("--per-user", args->per_user, "Write per-user metrics to this CSV file");
  cmd->add_flag("--cold-items", args->shared.cold_items,
                "Only test items without training interactions are relevant (users without one are "
                "skipped); ranking accuracy only");
  cmd->add_option("--cold-candidates", args->shared.cold_candidates,
                  "With --cold-items: rank only the cold catalog items (cold) or every unseen item (all)")
      ->check(CLI::IsMember({"cold", "all"}))
      ->capture_default_str();
  cmd->add_option("--bootstrap", args->shared.bootstrap,
                  "Bootstrap resamples of the 95% CIs (0 = no CIs)")
      ->capture_default_str();
  AddTrackingOptions(cmd, args->tracking);
  cmd->callback([args, &globals, &selected] {
    selected = [args, &globals] {
      return RunTracked(args->tracking, "evaluation",
                        [&](TrackedRun& run) { return RunEvaluate(*args, globals, run); });
    };
  });
}

// ---- baselines ----------------------------------------------------------------------

struct BaselinesArgs {
  EvalArgs shared;
  std::string baseline = "all";
  int k = 10;
  TrackingArgs tracking;
};

struct BaselineRow {
  std::string family, spec, error;
  double fit_seconds = 0;
  eval::EvalReport report;
};

int RunBaselines(const BaselinesArgs& args, const GlobalOptions& globals, TrackedRun& run) {
  Session session(globals);
  Context& ctx = session.ctx();
  ctx.seed = args.shared.seed;
  // Resolve the families first: a typo is a usage error before anything trains.
  std::vector<std::string> families;
  auto add = [&](const std::string& name) {
    if (std::find(families.begin(), families.end(), name) == families.end())
      families.push_back(name);
  };
  std::string list = args.baseline;
  while (!list.empty()) {
    std::size_t comma = list.find(',');
    std::string name = list.substr(0, comma);
    list = comma == std::string::npos ? "" : list.substr(comma + 1);
    if (name.empty()) continue;
    if (name == "all") {
      for (const auto& family : models::ModelFamilies()) add(family.name);
    } else {
      add(models::FindFamily(name).name);
    }
  }
  if (families.empty()) throw InvalidArgument("--baseline needs at least one family (or 'all')");
  EvalArgs shared = args.shared;
  shared.ks = {args.k};
  eval::EvalOptions options = shared.ToOptions();
  {
    auto params = shared.TrackingParams();
    params["baseline"] = args.baseline;
    run.Params(params);
  }

  data::PreparedDataset prepared = data::LoadPrepared(args.shared.dataset);
  const std::string dataset_hash = prepared.meta.value("content_hash", std::string());
  run.Lineage("input", "prepared", dataset_hash, args.shared.dataset);
  run.Tags({{"dataset_hash", dataset_hash}});
  models::TrainingData training = models::TrainingData::FromPrepared(prepared, ctx.threads);
  std::vector<BaselineRow> rows;
  for (const auto& family : families) {
    if (tracking::RunRecorder::Interrupted()) throw Error("interrupted");
    BaselineRow row;
    row.family = family;
    // One child run per baseline, under the parent run.
    std::unique_ptr<TrackedRun> child = std::make_unique<TrackedRun>();
    if (run.enabled()) {
      tracking::RunStart start;
      start.experiment = args.tracking.experiment.empty() ? std::string("baselines") : args.tracking.experiment;
      start.name = family;
      start.parent_id = run.run_id();
      start.command = CommandLine();
      start.tags = ParseTagOptions(args.tracking.tags);
      child = std::make_unique<TrackedRun>(run.location(), start);
      child->Lineage("input", "prepared", dataset_hash, args.shared.dataset);
    }
    // Families that fail (bad defaults for this data, out of memory, ...) are rows with
    // an error, so one failure does not hide the other baselines.
    try {
      auto model = models::CreateModel(family);
      row.spec = model->Spec();
      if (child->enabled()) {
        std::map<std::string, std::string> params = model->params().values();
        params["family"] = family;
        params["spec"] = row.spec;
        child->Params(params);
        std::string config = fmt::format("{}|dataset={}|seed={}|protocol={}|part={}|k={}", row.spec, dataset_hash,
                                         args.shared.seed, options.ProtocolLabel(), options.part, args.k);
        child->Tags({{"family", family}, {"dataset_hash", dataset_hash}, {"config_id", ConfigId(config)}});
      }
      session.log().Info("training {} ...", row.spec);
      auto start = Clock::now();
      model->Fit(training, ctx);
      row.fit_seconds = Seconds(start);
      eval::EvalOptions family_options = options;
      family_options.metrics = {"precision", "recall", "ndcg", "hit_rate"};
      if (model->PredictsRatings()) {
        family_options.metrics.push_back("rmse");
        family_options.metrics.push_back("mae");
      }
      row.report = eval::Evaluate(*model, prepared, family_options, ctx);
      session.log().Info("{}: fit {:.2f}s, ndcg@{} {:.4f}", row.spec, row.fit_seconds, args.k,
                         row.report.metrics.count(fmt::format("ndcg@{}", args.k))
                             ? row.report.metrics.at(fmt::format("ndcg@{}", args.k))
                             : std::nan(""));
      child->Metrics(row.report.metrics);
      child->Metrics({{"fit_seconds", row.fit_seconds}, {"duration_seconds", row.fit_seconds + row.report.seconds}});
      child->Finish();
    } catch (const std::exception& error) {
      row.error = error.what();
      session.log().Error("{}: {}", family, row.error);
      child->Fail(row.error);
    }
    rows.push_back(std::move(row));
  }
  session.FinishProgress();
  const bool any_ok = std::any_of(rows.begin(), rows.end(),
                                  [](const BaselineRow& row) { return row.error.empty(); });
  run.Metrics({{"baselines_ok", static_cast<double>(std::count_if(
                                    rows.begin(), rows.end(), [](const BaselineRow& row) { return row.error.empty(); }))},
               {"baselines_failed", static_cast<double>(std::count_if(
                                        rows.begin(), rows.end(), [](const BaselineRow& row) { return !row.error.empty(); }))}});

  const std::vector<std::string> keys = {
      fmt::format("ndcg@{}", args.k), fmt::format("recall@{}", args.k),
      fmt::format("precision@{}", args.k), fmt::format("hit_rate@{}", args.k), "rmse"};
  if (args.shared.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& row : rows) {
      nlohmann::json entry = {{"family", row.family}, {"spec", row.spec}};
      if (row.error.empty()) {
        entry["fit_seconds"] = row.fit_seconds;
        entry["metrics"] = row.report.ToJson()["metrics"];
        entry["confidence_intervals"] = row.report.ToJson()["confidence_intervals"];
        entry["users_evaluated"] = row.report.users_evaluated;
      } else {
        entry["error"] = row.error;
      }
      out.push_back(entry);
    }
    PrintJson({{"dataset", args.shared.dataset},
               {"protocol", options.ProtocolLabel()},
               {"part", options.part},
               {"k", args.k},
               {"baselines", out}});
    return any_ok ? 0 : 1;
  }
  std::size_t family_width = 6;
  for (const auto& row : rows) family_width = std::max(family_width, row.family.size());
  std::cout << fmt::format("baselines on {} (protocol {}, part {})\n", args.shared.dataset,
                           options.ProtocolLabel(), options.part);
  // The spec goes last: default specs are long and would push the numbers off screen.
  std::string header = fmt::format("{:<{}}  {:>8}", "family", family_width, "fit s");
  for (const auto& key : keys) header += fmt::format("  {:>12}", key);
  std::cout << header << "  spec\n";
  for (const auto& row : rows) {
    std::string line = fmt::format("{:<{}}  ", row.family, family_width);
    if (!row.error.empty()) {
      std::cout << line << "error: " << row.error << "\n";
      continue;
    }
    line += fmt::format("{:>8.2f}", row.fit_seconds);
    for (const auto& key : keys) {
      auto found = row.report.metrics.find(key);
      line +=
          fmt::format("  {:>12}", found == row.report.metrics.end() ? std::string("-")
                                                                    : FormatValue(found->second));
    }
    std::cout << line << "  " << row.spec << "\n";
  }
  return any_ok ? 0 : 1;
}

void AddBaselines(CLI::App& app, GlobalOptions& globals, CommandBody& selected) {
  auto args = std::make_shared<BaselinesArgs>();
  args->shared.bootstrap = 0;
  CLI::App* cmd = app.add_subcommand(
      "baselines", "Train every listed family with its default spec and evaluate it (one table)");
  cmd->add_option("--baseline,-b", args->baseline,
                  "Families, comma-separated, or 'all' (see `recforge models families`)")
      ->capture_default_str();
  AddSharedOptions(cmd, args->shared);
  cmd->add_option("--k,-k", args->k, "Cut-off of the table's metrics")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  cmd->add_option("--bootstrap", args->shared.bootstrap,
                  "Bootstrap resamples of the 95% CIs in --json (0 = none)")
      ->capture_default_str();
  AddTrackingOptions(cmd, args->tracking);
  cmd->callback([args, &globals, &selected] {
    selected = [args, &globals] {
      return RunTracked(args->tracking, "baselines",
                        [&](TrackedRun& run) { return RunBaselines(*args, globals, run); });
    };
  });
}

}  // namespace

void RegisterEvalCommands(CLI::App& app, GlobalOptions& globals, CommandBody& selected) {
  AddEvaluate(app, globals, selected);
  AddBaselines(app, globals, selected);
}

}  // namespace recforge::cli
