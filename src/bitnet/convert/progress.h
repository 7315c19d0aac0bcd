// Progress and interruption for long writes (convert, quantize).
//
// The bar goes to stderr only when stderr is a terminal: "\r<label> [#####.....]  45%  532/1179 MB  85 MB/s",
// redrawn at most 10 times a second, ended by a newline. Elsewhere (pipes, logs, tests) nothing is drawn.
//
// Ctrl-C: install_interrupt_handler() makes SIGINT and SIGTERM set a flag (a second signal kills as usual).
// Producers call Progress::advance(), which throws Error("interrupted") once the flag is set; the
// exception unwinds through GgufWriter::write, whose atomic output then removes its temporary file.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace bitnet {

void install_interrupt_handler();
bool interrupted();
void throw_if_interrupted();  // Error("interrupted") when a signal arrived

class Progress {
 public:
  // enabled = false: counts and checks for interruption, draws nothing. stderr_is_terminal() is the usual value.
  Progress(std::string label, uint64_t total_bytes, bool enabled);
  static bool stderr_is_terminal();

  void set_total(uint64_t bytes) { total_ = bytes; }
  void advance(uint64_t bytes);  // throws Error("interrupted")
  void finish();                 // final redraw and newline (no-op when disabled)
  uint64_t done() const { return done_; }

 private:
  void draw(bool final);

  std::string label_;
  uint64_t total_, done_ = 0;
  bool enabled_;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace bitnet
