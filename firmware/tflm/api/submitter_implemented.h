/* bench's submitter header of the MLPerf Tiny (EEMBC) DUT API: the
 * declarations the reference `internally_implemented.cpp` calls, with the
 * settings a submitter chooses. It stands in for the reference
 * `api/submitter_implemented.h` (bench compiles with `-iquote
 * firmware/tflm`, which is searched first), so that the `db` buffer holds
 * exactly this model's input (BENCH_INPUT_BYTES, from the build) instead of
 * the reference's fixed 96 x 96 x 3 bytes: a board with little RAM then
 * spends none on a buffer larger than its model's input, and a model with a
 * larger input (MCUNet's 160 x 160 x 3 image) can be loaded at all. */
#ifndef BENCH_SUBMITTER_IMPLEMENTED_H_
#define BENCH_SUBMITTER_IMPLEMENTED_H_

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EE_MSG_TIMESTAMP "m-lap-us-%lu\r\n"
#define TH_VENDOR_NAME_STRING "bench"

#ifndef BENCH_INPUT_BYTES
#error "BENCH_INPUT_BYTES (the model's input bytes) is set by bench's build"
#endif
#define MAX_DB_INPUT_SIZE (BENCH_INPUT_BYTES)

#ifndef TH_MODEL_VERSION
#error "TH_MODEL_VERSION (the model's name) is set by bench's build"
#endif

/* Performance mode: the runner talks to the DUT directly. */
#ifndef EE_CFG_ENERGY_MODE
#define EE_CFG_ENERGY_MODE 0
#endif
#if EE_CFG_ENERGY_MODE == 1
#define EE_MSG_TIMESTAMP_MODE "m-timestamp-mode-energy\r\n"
#else
#define EE_MSG_TIMESTAMP_MODE "m-timestamp-mode-performance\r\n"
#endif

/* The core API. */
void th_load_tensor();
void th_results();
void th_infer();
void th_timestamp(void);
void th_printf(const char *fmt, ...);
char th_getchar();

/* The optional API. */
void th_serialport_initialize(void);
void th_timestamp_initialize(void);
void th_final_initialize(void);
void th_pre();
void th_post();
void th_command_ready(char volatile *msg);

/* libc hooks. */
int th_strncmp(const char *str1, const char *str2, size_t n);
char *th_strncpy(char *dest, const char *src, size_t n);
size_t th_strnlen(const char *str, size_t maxlen);
char *th_strcat(char *dest, const char *src);
char *th_strtok(char *str1, const char *sep);
int th_atoi(const char *str);
void *th_memset(void *b, int c, size_t len);
void *th_memcpy(void *dst, const void *src, size_t n);
int th_vprintf(const char *format, va_list ap);

#endif
