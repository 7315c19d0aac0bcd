// bitnet chat -m MODEL [--system TEXT] [--chat-template NAME]: an interactive conversation.
// Each line of input is a user turn; /reset clears the history, /exit (or end of input) quits.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "bitnet/base/error.h"
#include "bitnet/text/chat_template.h"
#include "commands.h"
#include "model_flags.h"
#include "sampling_flags.h"

namespace bitnet::cli {

void print_timings(const GenerateResult& r, LmHead head);

Action register_chat(CLI::App& app) {
  struct Opts {
    ModelFlags model;
    SamplingFlags sampling;
    SpeculativeFlags spec;
    std::string system, chat_template;
    bool timings = false;
  };
  auto o = std::make_shared<Opts>();
  o->model.lm_head = "auto";  // generation: the 6-bit head (README "LM head formats"); eval/perplexity keep the file's
  o->model.add(app);
  o->sampling.add(app);
  o->spec.add(app);
  app.add_option("--system", o->system, "System message");
  app.add_option("--chat-template", o->chat_template, "Override the template: " + chat_template_names());
  app.add_flag("--timings", o->timings, "Print timings after each answer");
  return [o]() {
    GenerateParams params = o->sampling.params();
    Session s(o->model.path(), o->model.session_options());
    std::unique_ptr<Session> draft_session;
    const std::unique_ptr<Drafter> drafter = o->spec.make(s, o->model.session_options(), &draft_session);
    o->spec.apply(drafter.get(), &params);
    const Tokenizer& tok = s.tokenizer();
    ChatTemplate tmpl;
    if (!o->chat_template.empty()) {
      tmpl = parse_chat_template_flag(o->chat_template);
    } else {
      const auto embedded = s.model().file().get_string("tokenizer.chat_template").value_or("");
      const ChatTemplateChoice choice = detect_chat_template(embedded, s.model().config().arch_name);
      if (choice.notice) std::fprintf(stderr, "bitnet: note: %s\n", choice.notice->c_str());
      tmpl = choice.tmpl;
    }
    const bool tty = isatty(STDIN_FILENO);
    std::vector<ChatMessage> history;
    auto reset = [&] {
      history.clear();
      if (!o->system.empty()) history.push_back({"system", o->system});
    };
    reset();
    std::string line;
    while (true) {
      if (tty) std::fputs("\n> ", stdout), std::fflush(stdout);
      if (!std::getline(std::cin, line) || line == "/exit") break;
      if (line == "/reset") {
        reset();
        std::fputs("(history cleared)\n", stdout);
        continue;
      }
      if (line.empty()) continue;
      history.push_back({"user", line});
      // Special tokens only where the template put them: typed into a message they are text.
      const MarkedChat chat = render_chat_marked(tmpl, history, /*add_generation_prompt=*/true);
      const auto ids = tok.encode_marked(chat.text, chat.markup, tok.add_bos_default());
      const GenerateResult r = generate(s, ids, params, [](std::string_view piece) {
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        std::fflush(stdout);
        return true;
      });
      std::fputc('\n', stdout);
      std::fflush(stdout);
      history.push_back({"assistant", r.text});
      if (o->timings) print_timings(r, s.model().lm_head());
    }
    return 0;
  };
}

}  // namespace bitnet::cli
