// Fuzz target: chat templates. A fuzzed GGUF `tokenizer.chat_template` text and architecture go through
// detect_chat_template; fuzzed conversations (any roles, any bytes) are rendered with every template, plain
// and with their markup ranges.
//
// Input: gguf_template \0 architecture \0 flags-byte then role \0 content \0 role \0 content ...
// Only bitnet::Error may come out (unknown roles, an unknown --chat-template name).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "bitnet/base/error.h"
#include "bitnet/text/chat_template.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace bitnet;
  fuzz::Input in(data, size);
  const std::string_view gguf_template = in.until('\0');
  const std::string_view arch = in.until('\0');
  const uint8_t flags = in.u8();

  const ChatTemplateChoice choice = detect_chat_template(gguf_template, arch);
  if (chat_template_from_name(chat_template_name(choice.tmpl)) != choice.tmpl) std::abort();
  try {
    (void)parse_chat_template_flag(arch);
  } catch (const Error&) {
  }

  std::vector<ChatMessage> messages;
  while (!in.empty() && messages.size() < 64) {
    ChatMessage m;
    m.role = in.until('\0');
    m.content = in.until('\0');
    const std::string_view trimmed = jinja_trim(m.content);
    // trim returns a view into its argument
    if (!trimmed.empty() && (trimmed.data() < m.content.data() ||
                             trimmed.data() + trimmed.size() > m.content.data() + m.content.size()))
      std::abort();
    messages.push_back(std::move(m));
  }
  for (ChatTemplate t : {ChatTemplate::Bitnet, ChatTemplate::Llama3, ChatTemplate::BitnetFork}) {
    try {
      const std::string prompt = render_chat(t, messages, flags & 1);
      if (prompt.size() > 64 + 2 * size + 64 * messages.size()) std::abort();  // output stays proportional
      // The marked form: the same text; markup ranges non-empty, sorted, apart and inside it.
      const MarkedChat marked = render_chat_marked(t, messages, flags & 1);
      if (marked.text != prompt) std::abort();
      for (size_t r = 0; r < marked.markup.size(); ++r) {
        const Tokenizer::Range x = marked.markup[r];
        if (x.begin >= x.end || x.end > prompt.size() || (r > 0 && marked.markup[r - 1].end >= x.begin)) std::abort();
      }
    } catch (const Error&) {
    }
  }
  return 0;
}
