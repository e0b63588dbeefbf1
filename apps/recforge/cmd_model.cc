// recforge train | recommend
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <fstream>
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

double Seconds(Clock::time_point since) { return std::chrono::duration<double>(Clock::now() - since).count(); }

// Adds "key=value,key=value" entries to `entries` (later ones override).
void AddSpecEntries(const std::string& family, std::string text, std::map<std::string, std::string>& entries) {
  while (!text.empty()) {
    std::size_t comma = text.find(',');
    std::string part = text.substr(0, comma);
    text = comma == std::string::npos ? "" : text.substr(comma + 1);
    if (part.empty()) continue;
    std::size_t eq = part.find('=');
    if (eq == std::string::npos || eq == 0) throw ConfigError(fmt::format("{}: '{}' is not key=value", family, part));
    entries[part.substr(0, eq)] = part.substr(eq + 1);
  }
}

// Reads a model config YAML:
//   model: ials            # family (or a full spec "ials:factors=32")
//   params: {factors: 32, reg: 0.05}
// Returns (family, key -> value). Errors name the file, line and column.
std::pair<std::string, std::map<std::string, std::string>> ReadModelConfig(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw IoError(fmt::format("{}: cannot read config file", path));
  } catch (const YAML::ParserException& error) {
    throw ConfigError(fmt::format("{}:{}:{}: invalid YAML: {}", path, error.mark.line + 1, error.mark.column + 1,
                                  error.msg));
  }
  if (!root.IsMap()) throw ConfigError(fmt::format("{}: expected a mapping with 'model' and 'params'", path));
  std::string family;
  std::map<std::string, std::string> entries;
  for (const auto& entry : root) {
    std::string key = entry.first.as<std::string>();
    if (key == "model" || key == "family") {
      auto [name, rest] = models::SplitSpec(entry.second.as<std::string>());
      family = name;
      AddSpecEntries(family, rest, entries);
    } else if (key == "params") {
      if (!entry.second.IsMap()) {
        throw ConfigError(fmt::format("{}:{}: 'params' must be a mapping", path, entry.second.Mark().line + 1));
      }
      for (const auto& param : entry.second) {
        entries[param.first.as<std::string>()] = param.second.as<std::string>();
      }
    } else {
      throw ConfigError(fmt::format("{}:{}:{}: unknown key '{}' (valid: model, params)", path,
                                    entry.first.Mark().line + 1, entry.first.Mark().column + 1, key));
    }
  }
  if (family.empty()) throw ConfigError(fmt::format("{}: missing 'model: FAMILY'", path));
  return {family, entries};
}

// Spec flags override the config file, which overrides the defaults.
models::ParamValues ResolveSpec(const std::string& spec, const std::string& config_path) {
  if (config_path.empty()) {
    if (spec.empty()) throw InvalidArgument("--model SPEC or --config FILE is required");
    return models::ParseSpec(spec);
  }
  auto [family, entries] = ReadModelConfig(config_path);
  if (!spec.empty()) {
    auto [spec_family, rest] = models::SplitSpec(spec);
    if (spec_family != family) {
      throw InvalidArgument(fmt::format("--model family '{}' differs from '{}' in {}", spec_family, family,
                                        config_path));
    }
    AddSpecEntries(family, rest, entries);
  }
  const auto& fam = models::FindFamily(family);
  return models::ParamsFromMap(fam.name, fam.fields(), entries, config_path + ": ");
}

// ---- train --------------------------------------------------------------------------

struct TrainArgs {
  std::string dataset, spec, config, output;
  std::uint64_t seed = 42;
  bool no_val_metrics = false;
  bool json = false;
  TrackingArgs tracking;
};

int RunTrain(const TrainArgs& args, const GlobalOptions& globals, TrackedRun& run) {
  Session session(globals);
  Context& ctx = session.ctx();
  ctx.seed = args.seed;
  models::ParamValues params = ResolveSpec(args.spec, args.config);
  auto model = models::CreateModel(params);
  {
    std::map<std::string, std::string> logged = params.values();
    logged["family"] = params.family();
    logged["spec"] = model->Spec();
    logged["seed"] = std::to_string(args.seed);
    logged["dataset"] = args.dataset;
    run.Params(logged);
  }
  auto load_start = Clock::now();
  data::PreparedDataset prepared = data::LoadPrepared(args.dataset);
  const std::string dataset_hash = prepared.meta.value("content_hash", std::string());
  run.Lineage("input", "prepared", dataset_hash, args.dataset);
  // The config id names what is trained on what: same id, same model (given the seed).
  run.Tags({{"family", params.family()},
            {"dataset_hash", dataset_hash},
            {"config_id", ConfigId(fmt::format("{}|dataset={}|seed={}", model->Spec(), dataset_hash, args.seed))}});
  const double load_seconds = Seconds(load_start);
  models::TrainingData training = models::TrainingData::FromPrepared(prepared, ctx.threads);
  session.log().Info("training {} on {}: {} users, {} items, {} train interactions ({:.2f}s to load)",
                     model->Spec(), args.dataset, training.n_users, training.n_items, training.user_items->nnz(),
                     Seconds(load_start));

  nlohmann::json epochs = nlohmann::json::array();
  const bool val_metrics = prepared.val.has_value() && !args.no_val_metrics;
  models::TrainCallback callback = [&](const models::Recommender& trained, models::EpochReport& report) {
    if (val_metrics) {
      eval::EvalOptions options;
      options.ks = {10};
      options.metrics = {"ndcg", "recall"};
      options.bootstrap_samples = 0;
      options.part = "val";
      Context quiet = ctx;
      quiet.progress = {};
      auto val = eval::Evaluate(trained, prepared, options, quiet);
      for (const auto& [name, value] : val.metrics) report.metrics["val_" + name] = value;
    }
    std::string metrics;
    for (const auto& [name, value] : report.metrics) metrics += fmt::format(" {}={:.4f}", name, value);
    if (report.has_loss) metrics = fmt::format(" loss={:.6g}", report.loss) + metrics;
    session.log().Info("epoch {}/{}{} ({:.2f}s)", report.epoch, report.epochs, metrics, report.seconds);
    if (report.has_loss) run.Metric("loss", report.loss, report.epoch);
    run.Metrics(report.metrics, report.epoch);
    run.Metric("epoch_seconds", report.seconds, report.epoch);
    if (tracking::RunRecorder::Interrupted()) throw Error(fmt::format("interrupted after epoch {}", report.epoch));
    ctx.ReportProgress("train", static_cast<std::uint64_t>(report.epoch), static_cast<std::uint64_t>(report.epochs));
    nlohmann::json entry = {{"epoch", report.epoch}, {"seconds", report.seconds}};
    if (report.has_loss) entry["loss"] = report.loss;
    for (const auto& [name, value] : report.metrics) entry[name] = value;
    epochs.push_back(entry);
  };
  auto start = Clock::now();
  model->Fit(training, ctx, callback);
  double fit_seconds = Seconds(start);
  session.FinishProgress();
  if (!args.output.empty()) models::SaveModel(*model, args.output);
  run.Metrics({{"fit_seconds", fit_seconds}, {"load_seconds", load_seconds},
               {"epochs", static_cast<double>(epochs.size())}});
  if (run.enabled()) {
    // The model file is the run's artifact (saved to a scratch file when no --output,
    // so every tracked training can be registered).
    fs::path file = args.output;
    const bool scratch = file.empty();
    if (scratch) {
      file = fs::temp_directory_path() / fmt::format("recforge-{}-model.bin", run.run_id());
      models::SaveModel(*model, file);
    }
    const std::string sha = Sha256File(file);
    run.Lineage("output", "model", sha, scratch ? std::string() : args.output);
    run.Artifact(file, scratch ? std::string("model.bin") : file.filename().string(), "model");
    if (scratch) {
      std::error_code ignored;
      fs::remove(file, ignored);
    }
  }
  session.log().Info("trained {} in {:.2f}s{}", model->Spec(), fit_seconds,
                     args.output.empty() ? "" : fmt::format(", wrote {}", args.output));
  if (args.json) {
    PrintJson({{"spec", model->Spec()},
               {"family", model->family()},
               {"dataset", args.dataset},
               {"dataset_hash", model->dataset_hash()},
               {"n_users", model->n_users()},
               {"n_items", model->n_items()},
               {"fit_seconds", fit_seconds},
               {"epochs", epochs},
               {"output", args.output}});
  }
  return 0;
}

void AddTrain(CLI::App& app, GlobalOptions& globals, CommandBody& selected) {
  auto args = std::make_shared<TrainArgs>();
  CLI::App* cmd = app.add_subcommand("train", "Train a model on a prepared dataset");
  cmd->add_option("--dataset,-d", args->dataset, "Prepared dataset directory")->required();
  cmd->add_option("--model,-m", args->spec, "Model spec, e.g. ials:factors=64,reg=0.01 (see `recforge models list`)");
  cmd->add_option("--config,-c", args->config, "YAML config (model: FAMILY, params: {...}); --model keys override");
  cmd->add_option("--output,-o", args->output, "Model file to write");
  cmd->add_option("--seed", args->seed, "Random seed")->capture_default_str();
  cmd->add_flag("--no-val-metrics", args->no_val_metrics, "Skip per-epoch validation metrics on val/");
  cmd->add_flag("--json", args->json, "Print a JSON summary on stdout");
  AddTrackingOptions(cmd, args->tracking);
  cmd->callback([args, &globals, &selected] {
    selected = [args, &globals] {
      return RunTracked(args->tracking, "training", [&](TrackedRun& run) { return RunTrain(*args, globals, run); });
    };
  });
}

// ---- recommend ----------------------------------------------------------------------

struct RecommendArgs {
  std::string model, dataset, user, users_file, output;
  std::string tracking_uri;  // resolves NAME@ALIAS / NAME/N model references
  bool all_users = false;
  std::size_t k = 10;
  bool include_seen = false;
  bool json = false;
};

int RunRecommend(const RecommendArgs& args, const GlobalOptions& globals) {
  Session session(globals);
  int modes = (!args.user.empty()) + (!args.users_file.empty()) + (args.all_users ? 1 : 0);
  if (modes != 1) throw InvalidArgument("give exactly one of --user, --users-file, --all-users");
  auto model = models::LoadModel(ResolveModelArgument(args.model, args.tracking_uri));
  data::PreparedDataset prepared = data::LoadPrepared(args.dataset);
  if (prepared.items.size() != model->n_items() || prepared.users.size() != model->n_users()) {
    throw InvalidArgument(fmt::format("{} has {} users / {} items but the model was trained on {} / {}",
                                      args.dataset, prepared.users.size(), prepared.items.size(), model->n_users(),
                                      model->n_items()));
  }
  // The dataset's train part is the history to exclude.
  models::TrainingData training = models::TrainingData::FromPrepared(prepared, session.ctx().threads);
  model->SetSeen(training.user_items);

  std::vector<UserIndex> users;
  std::vector<std::string> unknown;
  auto add_user = [&](const std::string& id) {
    if (auto index = prepared.users.Find(id)) {
      users.push_back(*index);
    } else {
      unknown.push_back(id);
    }
  };
  if (!args.user.empty()) {
    add_user(args.user);
    if (users.empty()) throw NotFound(fmt::format("user '{}' is not in {}", args.user, args.dataset));
  } else if (!args.users_file.empty()) {
    std::string content = ReadFileToString(args.users_file);
    ForEachLine(content, 1, [&](std::string_view line, std::uint64_t) {
      if (!line.empty()) add_user(std::string(line));
    });
  } else {
    for (std::size_t u = 0; u < prepared.users.size(); ++u) users.push_back(static_cast<UserIndex>(u));
  }
  if (!unknown.empty()) {
    session.log().Warn("{} unknown user ids skipped (first: '{}')", unknown.size(), unknown.front());
  }
  models::RecommendOptions options;
  options.k = args.k;
  options.exclude_seen = !args.include_seen;
  auto start = Clock::now();
  auto lists = model->Recommend(users, options, session.ctx().threads);
  double seconds = Seconds(start);
  session.log().Info("recommended top-{} for {} users in {:.2f}s", args.k, users.size(), seconds);

  if (args.json) {
    nlohmann::json out = nlohmann::json::array();
    for (std::size_t k = 0; k < users.size(); ++k) {
      nlohmann::json items = nlohmann::json::array();
      for (std::size_t r = 0; r < lists[k].items.size(); ++r) {
        items.push_back({{"item_id", prepared.items.id(lists[k].items[r])}, {"score", lists[k].scores[r]}});
      }
      out.push_back({{"user_id", prepared.users.id(users[k])}, {"items", items}});
    }
    PrintJson(out);
    return 0;
  }
  std::string text;
  text.reserve(users.size() * (args.k * 8 + 16));
  for (std::size_t k = 0; k < users.size(); ++k) {
    text += prepared.users.id(users[k]);
    text += '\t';
    for (std::size_t r = 0; r < lists[k].items.size(); ++r) {
      if (r > 0) text += ',';
      text += prepared.items.id(lists[k].items[r]);
    }
    text += '\n';
  }
  if (args.output.empty()) {
    std::cout << text;
  } else {
    WriteFileAtomic(args.output, text);
    session.log().Info("wrote {}", args.output);
  }
  return 0;
}

void AddRecommend(CLI::App& app, GlobalOptions& globals, CommandBody& selected) {
  auto args = std::make_shared<RecommendArgs>();
  CLI::App* cmd = app.add_subcommand("recommend", "Offline top-K recommendations from a trained model");
  cmd->add_option("--model,-m", args->model, "Model file, or a registered model NAME@ALIAS / NAME/N")->required();
  AddTrackingUriOption(cmd, args->tracking_uri);
  cmd->add_option("--dataset,-d", args->dataset, "The prepared dataset the model was trained on")->required();
  cmd->add_option("--user,-u", args->user, "One user id");
  cmd->add_option("--users-file", args->users_file, "File with one user id per line");
  cmd->add_flag("--all-users", args->all_users, "Every user of the dataset");
  cmd->add_option("--k,-k", args->k, "List length")->capture_default_str()->check(CLI::Range(1, 100000));
  cmd->add_flag("--include-seen", args->include_seen, "Do not exclude the user's training items");
  cmd->add_option("--output,-o", args->output, "Write `user<TAB>item1,item2,...` lines here (default: stdout)");
  cmd->add_flag("--json", args->json, "JSON with scores instead of TSV");
  cmd->callback([args, &globals, &selected] { selected = [args, &globals] { return RunRecommend(*args, globals); }; });
}

// ---- models list --------------------------------------------------------------------

void AddModelsList(CLI::App& app, GlobalOptions&, CommandBody& selected) {
  struct Args {
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* models_cmd = app.add_subcommand("models", "Model families (and, later, the model registry)");
  models_cmd->require_subcommand(1);
  CLI::App* cmd = models_cmd->add_subcommand("families", "List model families and their parameters");
  cmd->add_flag("--json", args->json, "JSON output");
  cmd->callback([args, &selected] {
    selected = [args] {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& family : models::ModelFamilies()) {
        if (args->json) {
          nlohmann::json fields = nlohmann::json::array();
          for (const auto& field : family.fields()) {
            fields.push_back({{"name", field.name}, {"default", field.default_value}, {"help", field.help},
                              {"aliases", field.aliases}});
          }
          out.push_back({{"name", family.name}, {"summary", family.summary}, {"reference", family.reference},
                         {"rating_model", family.rating_model}, {"params", fields}});
        } else {
          std::cout << family.name << " — " << family.summary << " [" << family.reference << "]\n"
                    << models::DescribeFields(family.fields()) << "\n";
        }
      }
      if (args->json) PrintJson(out);
      return 0;
    };
  });
}

}  // namespace

void RegisterModelCommands(CLI::App& app, GlobalOptions& globals, CommandBody& selected) {
  AddTrain(app, globals, selected);
  AddRecommend(app, globals, selected);
  AddModelsList(app, globals, selected);
}

}  // namespace recforge::cli
