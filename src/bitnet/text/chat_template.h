// Chat templates: a conversation -> the prompt text for the tokenizer. bitnet runs no Jinja; it knows
// three fixed formats and recognises the GGUF `tokenizer.chat_template` texts that ask for them.
// BITNET_FORMATS.md §6 lists the three templates in circulation for BitNet b1.58 2B-4T and how they
// disagree.
//
//   bitnet       HF tokenizer_config.json of 2B-4T (the recommended one):
//                  "System: sys<|eot_id|>User: hi<|eot_id|>Assistant: "
//   llama3       LLaMA-3 headers:
//                  "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
//                  "<|start_header_id|>assistant<|end_header_id|>\n\n"
//   bitnet-fork  the built-in `bitnet` template of bitnet.cpp's llama.cpp (for comparisons with it):
//                  "System: sysUser: hi<|eot_id|>Assistant: "
//
// The rendered text never contains BOS: the tokenizer adds it. Encode it with Tokenizer::encode_marked
// and the markup ranges of render_chat_marked: the template's special tokens (<|eot_id|>, ...) become
// their ids, while the same text typed in a message stays text (a user cannot end a turn or forge a
// header). encode(text, add_bos, parse_special = true) gives the same ids when no message contains one.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bitnet/text/tokenizer.h"

namespace bitnet {

struct ChatMessage {
  std::string role;     // "system", "user" or "assistant"
  std::string content;  // any bytes; passed through (trimmed where the template trims)
};

enum class ChatTemplate {
  Bitnet,      // 2B-4T HF form
  Llama3,
  BitnetFork,  // bitnet.cpp built-in
};

// "bitnet", "llama3", "bitnet-fork" -> the template; nullopt for anything else.
std::optional<ChatTemplate> chat_template_from_name(std::string_view name);
const char* chat_template_name(ChatTemplate t);
std::string chat_template_names();  // "bitnet, llama3, bitnet-fork", for help texts and errors
// As chat_template_from_name, but throws bitnet::Error naming --chat-template and listing the choices.
ChatTemplate parse_chat_template_flag(std::string_view name);

struct ChatTemplateChoice {
  ChatTemplate tmpl;
  // A sentence to print once on stderr (why the file's template is not used as is), or nullopt.
  std::optional<std::string> notice;
};

// Picks the template for a model from its GGUF `tokenizer.chat_template` (may be empty) and
// `general.architecture`:
//   - the template bitnet.cpp's converter writes (contains "BITNETAssistant") -> Bitnet, with a notice:
//     it has no system branch and puts an end-of-sequence token after the generation prompt;
//   - LLaMA-3 headers (<|start_header_id|> and <|end_header_id|>) -> Llama3;
//   - the HF 2B-4T template ("message['role'] | capitalize + ': ' + ... | trim + '<|eot_id|>'" and
//     "'Assistant: '"; compared ignoring whitespace) -> Bitnet;
//   - empty -> the architecture's default (bitnet-b1.58, bitnet-25, bitnet: Bitnet; llama: Llama3);
//   - anything else -> the architecture's default, with a notice. An architecture with no default
//     gets Bitnet, also with a notice.
ChatTemplateChoice detect_chat_template(std::string_view gguf_template, std::string_view architecture);

// The prompt for `messages`, without BOS. add_generation_prompt appends the assistant's turn opener
// (Bitnet "Assistant: ", Llama3 the assistant header). BitnetFork ignores it: as in bitnet.cpp, every
// user turn already ends with "<|eot_id|>Assistant: ". Throws bitnet::Error for a role other than
// system, user and assistant (naming the message index and the role).
std::string render_chat(ChatTemplate t, const std::vector<ChatMessage>& messages,
                        bool add_generation_prompt);

// The same text, with the byte ranges the template wrote (everything but the messages' contents),
// sorted and disjoint, for Tokenizer::encode_marked.
struct MarkedChat {
  std::string text;
  std::vector<Tokenizer::Range> markup;
};
MarkedChat render_chat_marked(ChatTemplate t, const std::vector<ChatMessage>& messages,
                              bool add_generation_prompt);

// Jinja's `trim` filter (Python str.strip()): removes leading and trailing whitespace as Python's
// str.isspace() defines it: ASCII \t \n \v \f \r, U+001C..U+001F, space, U+0085, U+00A0, U+1680,
// U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000. Invalid UTF-8 is never whitespace.
std::string_view jinja_trim(std::string_view s);

}  // namespace bitnet
