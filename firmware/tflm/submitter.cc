// The MLPerf Tiny (EEMBC) DUT of bench's TFLite Micro firmware: the
// submitter half of the reference API (benchmark/api/submitter_implemented.h)
// around a TFLM interpreter with the model compiled in. The reference
// internally_implemented.cpp parses the commands; this file loads the input,
// runs inferences, prints results and timestamps over the board's UART.
//
// Generated per build by bench (harness/src/build/tflm/):
//   bench_model.S   the .tflite bytes as `bench_model` (.incbin)
//   bench_ops.h     BENCH_OP_COUNT and BENCH_ADD_OPS(resolver): the
//                   MicroMutableOpResolver calls for the model's operators
// and defines: BENCH_ARENA_BYTES, BENCH_CLOCK_HZ.

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "api/internally_implemented.h"
#include "api/submitter_implemented.h"
#include "bench_ops.h"
#include "tensorflow/lite/micro/cortex_m_generic/debug_log_callback.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

extern "C" {
extern const unsigned char bench_model[];
void board_init(void);
void board_putc(char c);
char board_getc(void);
uint32_t board_ticks(void);
void board_fault(const char* what);
uint32_t board_stack_peak(void);
}

extern uint8_t gp_buff[MAX_DB_INPUT_SIZE];
extern size_t g_buff_size;

namespace {

alignas(16) uint8_t arena[BENCH_ARENA_BYTES];
tflite::MicroInterpreter* interpreter = nullptr;

// Ticks since start-up in 64 bits: the 32-bit board timer wraps every
// 2^32 ticks (172 s at 25 MHz), and timestamps come at least that often.
uint64_t elapsed_ticks() {
  static uint32_t last = 0;
  static uint64_t total = 0;
  uint32_t now = board_ticks();
  total += static_cast<uint32_t>(now - last);
  last = now;
  return total;
}

void put_string(const char* s) {
  while (*s) board_putc(*s++);
}

void print_hex(const uint8_t* bytes, size_t n) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; ++i) {
    board_putc(digits[bytes[i] >> 4]);
    board_putc(digits[bytes[i] & 15]);
  }
}

float dequantized(const TfLiteTensor* t, size_t i) {
  switch (t->type) {
    case kTfLiteFloat32:
      return t->data.f[i];
    case kTfLiteInt8:
      return (t->data.int8[i] - t->params.zero_point) * t->params.scale;
    case kTfLiteUInt8:
      return (t->data.uint8[i] - t->params.zero_point) * t->params.scale;
    case kTfLiteInt16:
      return (t->data.i16[i] - t->params.zero_point) * t->params.scale;
    default:
      return 0.0f;
  }
}

size_t element_bytes(TfLiteType type) {
  switch (type) {
    case kTfLiteInt8:
    case kTfLiteUInt8:
      return 1;
    case kTfLiteInt16:
      return 2;
    default:
      return 4;
  }
}

}  // namespace

void th_serialport_initialize(void) { board_init(); }

void th_timestamp_initialize(void) {
  th_printf(EE_MSG_TIMESTAMP_MODE);
  th_timestamp();
}

void th_final_initialize(void) {
  RegisterDebugLogCallback(put_string);
  static tflite::MicroMutableOpResolver<BENCH_OP_COUNT> resolver;
  BENCH_ADD_OPS(resolver);
  static tflite::MicroInterpreter interp(tflite::GetModel(bench_model), resolver, arena,
                                         sizeof arena);
  if (interp.AllocateTensors() != kTfLiteOk) {
    board_fault("AllocateTensors failed (see the TFLM log above)");
  }
  interpreter = &interp;
  // Not part of the EEMBC protocol: the arena TFLM used, for bench's memory columns.
  th_printf("m-arena-used-bytes-%u\r\n", static_cast<unsigned>(interp.arena_used_bytes()));
}

// The `db` buffer holds every input of the model, one after the other in
// the model's input order.
size_t input_bytes() {
  size_t total = 0;
  for (size_t i = 0; i < interpreter->inputs_size(); ++i) total += interpreter->input(i)->bytes;
  return total;
}

void th_load_tensor() {
  if (g_buff_size != input_bytes()) {
    th_printf("e-[the input has %u bytes, the model takes %u]\r\n",
              static_cast<unsigned>(g_buff_size), static_cast<unsigned>(input_bytes()));
  }
}

// Where an inference starts and ends, as symbols bench's QEMU plugin
// watches to count the blocks run between them for its cycle models (the
// same two bench's own firmware has, firmware/core's `window`); different
// stores keep the linker from folding them into one address.
extern "C" {
volatile unsigned bench_window;
__attribute__((noinline, used)) void bench_timed_begin(void) { bench_window = 1; }
__attribute__((noinline, used)) void bench_timed_end(void) { bench_window = 0; }
}

// TFLM's planner gives the input tensors' memory to later activations, so
// an inference overwrites its inputs: each one copies them again from the
// `db` buffer (490 bytes for KWS, about 0.002% of its time on a Cortex-M4).
void th_infer() {
  size_t offset = 0;
  for (size_t i = 0; i < interpreter->inputs_size(); ++i) {
    TfLiteTensor* input = interpreter->input(i);
    size_t n = offset + input->bytes <= g_buff_size ? input->bytes : 0;
    memcpy(input->data.raw, gp_buff + offset, n);
    offset += input->bytes;
  }
  bench_timed_begin();
  TfLiteStatus status = interpreter->Invoke();
  bench_timed_end();
  if (status != kTfLiteOk) {
    th_printf("e-[Invoke failed]\r\n");
  }
}

// The reference format (dequantized values, three decimals), then, not part
// of the EEMBC protocol, every output's bytes in hex so that bench compares
// them exactly.
void th_results() {
  th_printf("m-results-[");
  for (size_t o = 0; o < interpreter->outputs_size(); ++o) {
    const TfLiteTensor* out = interpreter->output(o);
    size_t n = out->bytes / element_bytes(out->type);
    for (size_t i = 0; i < n; ++i) {
      th_printf(o + i == 0 ? "%0.3f" : ",%0.3f", static_cast<double>(dequantized(out, i)));
    }
  }
  th_printf("]\r\n");
  put_string("m-results-bytes-[");
  for (size_t o = 0; o < interpreter->outputs_size(); ++o) {
    if (o > 0) board_putc(',');
    const TfLiteTensor* out = interpreter->output(o);
    print_hex(reinterpret_cast<const uint8_t*>(out->data.raw), out->bytes);
  }
  put_string("]\r\n");
  // Not part of the EEMBC protocol either: the stack's peak so far, by painting.
  th_printf("m-stack-used-bytes-%u\r\n", static_cast<unsigned>(board_stack_peak()));
}

void th_timestamp(void) {
  uint64_t ticks = elapsed_ticks();
  unsigned long micro_seconds = static_cast<unsigned long>(ticks * 1000000u / BENCH_CLOCK_HZ);
  th_printf(EE_MSG_TIMESTAMP, micro_seconds);
}

void th_printf(const char* fmt, ...) {
  char line[256];
  va_list args;
  va_start(args, fmt);
  vsnprintf(line, sizeof line, fmt, args);
  va_end(args);
  put_string(line);
}

char th_getchar() { return board_getc(); }

void th_command_ready(char volatile* command) {
  ee_serial_command_parser_callback(const_cast<char*>(command));
}

void th_pre() {}
void th_post() {}

int th_strncmp(const char* a, const char* b, size_t n) { return strncmp(a, b, n); }
char* th_strncpy(char* dest, const char* src, size_t n) { return strncpy(dest, src, n); }
size_t th_strnlen(const char* s, size_t maxlen) {
  size_t n = 0;
  while (n < maxlen && s[n] != 0) ++n;
  return n;
}
char* th_strcat(char* dest, const char* src) { return strcat(dest, src); }
char* th_strtok(char* s, const char* sep) { return strtok(s, sep); }
int th_atoi(const char* s) { return atoi(s); }
void* th_memset(void* b, int c, size_t len) { return memset(b, c, len); }
void* th_memcpy(void* dst, const void* src, size_t n) { return memcpy(dst, src, n); }
int th_vprintf(const char* format, va_list ap) {
  char line[256];
  int n = vsnprintf(line, sizeof line, format, ap);
  put_string(line);
  return n;
}

int main() {
  ee_benchmark_initialize();
  for (;;) ee_serial_callback(th_getchar());
}
