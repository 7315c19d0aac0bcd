#include "bitnet/text/chat_template.h"

#include <cstdint>
#include <iterator>

#include "bitnet/base/error.h"
#include "bitnet/base/utf8.h"

namespace bitnet {
namespace {

struct TemplateInfo {
  ChatTemplate tmpl;
  const char* name;  // --chat-template value
};
constexpr TemplateInfo kTemplates[] = {
    {ChatTemplate::Bitnet, "bitnet"},
    {ChatTemplate::Llama3, "llama3"},
    {ChatTemplate::BitnetFork, "bitnet-fork"},
};

// Default template per general.architecture (names as in model/arch.h).
struct ArchDefault {
  std::string_view arch;
  ChatTemplate tmpl;
};
constexpr ArchDefault kArchDefaults[] = {
    {"bitnet-b1.58", ChatTemplate::Bitnet},
    {"bitnet-25", ChatTemplate::Bitnet},
    {"bitnet", ChatTemplate::Bitnet},
    {"llama", ChatTemplate::Llama3},
};

enum class Role { System, User, Assistant };
struct RoleInfo {
  std::string_view name;     // as in ChatMessage::role
  std::string_view display;  // Jinja `capitalize` of the name (first letter upper, rest lower)
};
constexpr RoleInfo kRoles[] = {
    {"system", "System"},
    {"user", "User"},
    {"assistant", "Assistant"},
};

constexpr std::string_view kEot = "<|eot_id|>";

bool is_python_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
         cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

// Whitespace and quote style removed, so that formatting variants of one template compare equal.
std::string squeeze(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
    out.push_back(c == '"' ? '\'' : c);
  }
  return out;
}

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

std::optional<ChatTemplate> arch_default(std::string_view architecture) {
  for (const ArchDefault& d : kArchDefaults) {
    if (d.arch == architecture) return d.tmpl;
  }
  return std::nullopt;
}

Role parse_role(const ChatMessage& m, size_t index) {
  for (size_t i = 0; i < std::size(kRoles); ++i) {
    if (kRoles[i].name == m.role) return static_cast<Role>(i);
  }
  fail("chat message {} has role \"{}\"; the roles are system, user and assistant.", index,
       escape_for_message(m.role));
}

std::string_view display_name(Role r) { return kRoles[static_cast<size_t>(r)].display; }
std::string_view role_name(Role r) { return kRoles[static_cast<size_t>(r)].name; }

}  // namespace

std::optional<ChatTemplate> chat_template_from_name(std::string_view name) {
  for (const TemplateInfo& t : kTemplates) {
    if (name == t.name) return t.tmpl;
  }
  return std::nullopt;
}

const char* chat_template_name(ChatTemplate t) {
  for (const TemplateInfo& info : kTemplates) {
    if (info.tmpl == t) return info.name;
  }
  return "?";
}

std::string chat_template_names() {
  std::string out;
  for (const TemplateInfo& t : kTemplates) {
    if (!out.empty()) out += ", ";
    out += t.name;
  }
  return out;
}

ChatTemplate parse_chat_template_flag(std::string_view name) {
  if (auto t = chat_template_from_name(name)) return *t;
  fail("--chat-template \"{}\" is not a template bitnet knows; choose one of: {}.",
       escape_for_message(name), chat_template_names());
}

ChatTemplateChoice detect_chat_template(std::string_view gguf_template, std::string_view architecture) {
  const std::optional<ChatTemplate> by_arch = arch_default(architecture);
  const ChatTemplate fallback = by_arch.value_or(ChatTemplate::Bitnet);
  const std::string fallback_reason =
      by_arch ? fmt::format("\"{}\", the default for architecture \"{}\"", chat_template_name(fallback),
                            architecture)
              : fmt::format("\"{}\" (architecture \"{}\" has no default of its own)",
                            chat_template_name(fallback), escape_for_message(architecture));

  if (contains(gguf_template, "BITNETAssistant")) {
    // BITNET_FORMATS.md §6 item 2, written by bitnet.cpp's convert-ms-to-gguf-bitnet.py.
    return {ChatTemplate::Bitnet,
            "the chat template in this GGUF (\"Human: ... BITNETAssistant: \", from bitnet.cpp's "
            "converter) is not used: it drops system messages and puts an end-of-sequence token right "
            "after the assistant prompt, so the model is told its turn is over before it starts. Using "
            "\"bitnet\", the model's own HF template, instead; pick another with --chat-template (" +
                chat_template_names() + ")."};
  }
  if (contains(gguf_template, "<|start_header_id|>") && contains(gguf_template, "<|end_header_id|>")) {
    return {ChatTemplate::Llama3, std::nullopt};
  }
  const std::string s = squeeze(gguf_template);
  if (contains(s, "message['role']|capitalize") && contains(s, "|trim") && contains(s, "<|eot_id|>") &&
      contains(s, "'Assistant:")) {
    return {ChatTemplate::Bitnet, std::nullopt};
  }
  if (gguf_template.empty()) {
    if (by_arch) return {fallback, std::nullopt};
    return {fallback, "the GGUF has no chat template; using " + fallback_reason +
                          ". Pick another with --chat-template (" + chat_template_names() + ")."};
  }
  return {fallback, "the chat template in this GGUF (\"" + escape_for_message(gguf_template, 60) +
                        "\") is not one bitnet recognises (it does not run Jinja); using " +
                        fallback_reason + ". Pick another with --chat-template (" +
                        chat_template_names() + ")."};
}

std::string_view jinja_trim(std::string_view s) {
  size_t begin = 0;
  while (begin < s.size()) {
    const size_t len = utf8_sequence_length(s, begin);
    if (len == 0 || !is_python_space(utf8_decode(s, begin, len))) break;
    begin += len;
  }
  size_t end = s.size();
  while (end > begin) {
    size_t start = end - 1;  // first byte of the last code point: back over up to 3 continuation bytes
    while (start > begin && end - start < 4 && (static_cast<uint8_t>(s[start]) & 0xC0) == 0x80) --start;
    const size_t len = utf8_sequence_length(s, start);
    if (len != end - start || !is_python_space(utf8_decode(s, start, len))) break;
    end = start;
  }
  return s.substr(begin, end - begin);
}

MarkedChat render_chat_marked(ChatTemplate t, const std::vector<ChatMessage>& messages,
                              bool add_generation_prompt) {
  std::vector<Role> roles;
  roles.reserve(messages.size());
  size_t bytes = 64;
  for (size_t i = 0; i < messages.size(); ++i) {
    roles.push_back(parse_role(messages[i], i));
    bytes += messages[i].content.size() + 48;
  }
  MarkedChat chat;
  chat.text.reserve(bytes);
  // Template text extends the markup range that ends where it starts; message content is never markup.
  auto markup = [&chat](std::string_view s) {
    if (chat.markup.empty() || chat.markup.back().end != chat.text.size())
      chat.markup.push_back({chat.text.size(), chat.text.size()});
    chat.text += s;
    chat.markup.back().end = chat.text.size();
  };
  auto content = [&chat](std::string_view s) { chat.text += s; };

  switch (t) {
    case ChatTemplate::Bitnet:
      // {{ message['role'] | capitalize + ': ' + message['content'] | trim + '<|eot_id|>' }} per
      // message, then {{ 'Assistant: ' }}. The HF template has the space after "Assistant:"; kept, so
      // the prompt matches what transformers' apply_chat_template feeds the model.
      for (size_t i = 0; i < messages.size(); ++i) {
        markup(display_name(roles[i]));
        markup(": ");
        content(jinja_trim(messages[i].content));
        markup(kEot);
      }
      if (add_generation_prompt) markup("Assistant: ");
      break;

    case ChatTemplate::Llama3:
      // Meta's LLaMA-3 template, minus the bos_token it puts before the first message.
      for (size_t i = 0; i < messages.size(); ++i) {
        markup("<|start_header_id|>");
        markup(role_name(roles[i]));
        markup("<|end_header_id|>\n\n");
        content(jinja_trim(messages[i].content));
        markup(kEot);
      }
      if (add_generation_prompt) markup("<|start_header_id|>assistant<|end_header_id|>\n\n");
      break;

    case ChatTemplate::BitnetFork:
      // bitnet.cpp's llama_chat_apply_template `bitnet` branch (BITNET_FORMATS.md §6 item 3): no trim,
      // no separator after the system text, the assistant opener inside the user turn. One deliberate
      // difference: an assistant message is followed by <|eot_id|>. The fork's template writes the
      // content alone, but in its interactive CLI (run_inference.py -cnv) the <|eot_id|> the model
      // ended its answer with stays in the KV cache before the next "User: ", so with <|eot_id|> a
      // re-rendered history gives the model the tokens it saw live (and the format it was trained on).
      for (size_t i = 0; i < messages.size(); ++i) {
        switch (roles[i]) {
          case Role::System:
            markup("System: ");
            content(messages[i].content);
            break;
          case Role::User:
            markup("User: ");
            content(messages[i].content);
            markup(kEot);
            markup("Assistant: ");
            break;
          case Role::Assistant:
            content(messages[i].content);
            markup(kEot);
            break;
        }
      }
      break;
  }
  return chat;
}

std::string render_chat(ChatTemplate t, const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
  return render_chat_marked(t, messages, add_generation_prompt).text;
}

}  // namespace bitnet
