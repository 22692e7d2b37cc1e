// MD5 of many files at once: eight files hashed side by side in the lanes of AVX2 registers
// (multi-buffer MD5, as in Intel's ISA-L and minio/md5-simd). One MD5 stream is serial, so a core
// cannot hash one file faster than OpenSSL does; eight independent streams run about 3x faster.
// Called from the worker threads with a batch of files; falls back to node:crypto where there is
// no AVX2 (the `simd` export says which).
#define NAPI_VERSION 8
#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define HAVE_X86 1
#endif

#define LANES 8
#define BLOCK 64
// Per-lane read buffer: eight of them fit a core's L2 cache with room for the hashing.
#define CHUNK (32 * 1024)
#define PATH_MAX_BYTES 8192

static const uint32_t K[64] = {
  0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
  0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
  0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
  0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
  0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
  0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
  0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
  0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
};
static const uint32_t IV[4] = { 0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476 };

// The 64 steps, shared by the scalar and the vector compression: round function, registers in
// their rotating order, step number, shift, message word.
#define ROUNDS(S, F, G, H, I) \
  S(F, a, b, c, d, 0, 7, 0);   S(F, d, a, b, c, 1, 12, 1);  S(F, c, d, a, b, 2, 17, 2);  S(F, b, c, d, a, 3, 22, 3); \
  S(F, a, b, c, d, 4, 7, 4);   S(F, d, a, b, c, 5, 12, 5);  S(F, c, d, a, b, 6, 17, 6);  S(F, b, c, d, a, 7, 22, 7); \
  S(F, a, b, c, d, 8, 7, 8);   S(F, d, a, b, c, 9, 12, 9);  S(F, c, d, a, b, 10, 17, 10); S(F, b, c, d, a, 11, 22, 11); \
  S(F, a, b, c, d, 12, 7, 12); S(F, d, a, b, c, 13, 12, 13); S(F, c, d, a, b, 14, 17, 14); S(F, b, c, d, a, 15, 22, 15); \
  S(G, a, b, c, d, 16, 5, 1);  S(G, d, a, b, c, 17, 9, 6);  S(G, c, d, a, b, 18, 14, 11); S(G, b, c, d, a, 19, 20, 0); \
  S(G, a, b, c, d, 20, 5, 5);  S(G, d, a, b, c, 21, 9, 10); S(G, c, d, a, b, 22, 14, 15); S(G, b, c, d, a, 23, 20, 4); \
  S(G, a, b, c, d, 24, 5, 9);  S(G, d, a, b, c, 25, 9, 14); S(G, c, d, a, b, 26, 14, 3);  S(G, b, c, d, a, 27, 20, 8); \
  S(G, a, b, c, d, 28, 5, 13); S(G, d, a, b, c, 29, 9, 2);  S(G, c, d, a, b, 30, 14, 7);  S(G, b, c, d, a, 31, 20, 12); \
  S(H, a, b, c, d, 32, 4, 5);  S(H, d, a, b, c, 33, 11, 8); S(H, c, d, a, b, 34, 16, 11); S(H, b, c, d, a, 35, 23, 14); \
  S(H, a, b, c, d, 36, 4, 1);  S(H, d, a, b, c, 37, 11, 4); S(H, c, d, a, b, 38, 16, 7);  S(H, b, c, d, a, 39, 23, 10); \
  S(H, a, b, c, d, 40, 4, 13); S(H, d, a, b, c, 41, 11, 0); S(H, c, d, a, b, 42, 16, 3);  S(H, b, c, d, a, 43, 23, 6); \
  S(H, a, b, c, d, 44, 4, 9);  S(H, d, a, b, c, 45, 11, 12); S(H, c, d, a, b, 46, 16, 15); S(H, b, c, d, a, 47, 23, 2); \
  S(I, a, b, c, d, 48, 6, 0);  S(I, d, a, b, c, 49, 10, 7); S(I, c, d, a, b, 50, 15, 14); S(I, b, c, d, a, 51, 21, 5); \
  S(I, a, b, c, d, 52, 6, 12); S(I, d, a, b, c, 53, 10, 3); S(I, c, d, a, b, 54, 15, 10); S(I, b, c, d, a, 55, 21, 1); \
  S(I, a, b, c, d, 56, 6, 8);  S(I, d, a, b, c, 57, 10, 15); S(I, c, d, a, b, 58, 15, 6);  S(I, b, c, d, a, 59, 21, 13); \
  S(I, a, b, c, d, 60, 6, 4);  S(I, d, a, b, c, 61, 10, 11); S(I, c, d, a, b, 62, 15, 2);  S(I, b, c, d, a, 63, 21, 9);

static inline uint32_t load32(const uint8_t *p) {
  uint32_t x;
  memcpy(&x, p, 4);  // MD5 is little-endian, as every machine this builds on
  return x;
}

#define SF(b, c, d) (d ^ (b & (c ^ d)))
#define SG(b, c, d) (c ^ (d & (b ^ c)))
#define SH(b, c, d) (b ^ c ^ d)
#define SI(b, c, d) (c ^ (b | ~d))
#define SSTEP(f, a, b, c, d, i, s, g) \
  a += f(b, c, d) + K[i] + load32(block + 4 * (g)); a = b + ((a << s) | (a >> (32 - s)))

/** One block into one state (a, b, c, d): for the last files of a batch, when lanes would idle. */
static void md5_block(uint32_t st[4], const uint8_t *block) {
  uint32_t a = st[0], b = st[1], c = st[2], d = st[3];
  ROUNDS(SSTEP, SF, SG, SH, SI)
  st[0] += a; st[1] += b; st[2] += c; st[3] += d;
}

#ifdef HAVE_X86
typedef __m256i vec;
#define VADD(x, y) _mm256_add_epi32(x, y)
#define VF(b, c, d) _mm256_xor_si256(d, _mm256_and_si256(b, _mm256_xor_si256(c, d)))
#define VG(b, c, d) _mm256_xor_si256(c, _mm256_and_si256(d, _mm256_xor_si256(b, c)))
#define VH(b, c, d) _mm256_xor_si256(_mm256_xor_si256(b, c), d)
#define VI(b, c, d) _mm256_xor_si256(c, _mm256_or_si256(b, _mm256_xor_si256(d, ones)))
#define VSTEP(f, a, b, c, d, i, s, g) \
  a = VADD(VADD(a, f(b, c, d)), VADD(_mm256_set1_epi32((int)K[i]), m[g])); \
  a = VADD(b, _mm256_or_si256(_mm256_slli_epi32(a, s), _mm256_srli_epi32(a, 32 - s)))

/** One block of each of eight streams; state is [a, b, c, d] × eight lanes. */
__attribute__((target("avx2"))) static void md5x8_block(uint32_t st[4][LANES], const uint8_t *blocks[LANES]) {
  const vec ones = _mm256_set1_epi32(-1);
  vec m[16];
  for (int w = 0; w < 16; w++) {
    m[w] = _mm256_setr_epi32((int)load32(blocks[0] + 4 * w), (int)load32(blocks[1] + 4 * w), (int)load32(blocks[2] + 4 * w),
      (int)load32(blocks[3] + 4 * w), (int)load32(blocks[4] + 4 * w), (int)load32(blocks[5] + 4 * w),
      (int)load32(blocks[6] + 4 * w), (int)load32(blocks[7] + 4 * w));
  }
  vec a = _mm256_loadu_si256((const vec *)st[0]), b = _mm256_loadu_si256((const vec *)st[1]);
  vec c = _mm256_loadu_si256((const vec *)st[2]), d = _mm256_loadu_si256((const vec *)st[3]);
  const vec a0 = a, b0 = b, c0 = c, d0 = d;
  ROUNDS(VSTEP, VF, VG, VH, VI)
  _mm256_storeu_si256((vec *)st[0], VADD(a, a0));
  _mm256_storeu_si256((vec *)st[1], VADD(b, b0));
  _mm256_storeu_si256((vec *)st[2], VADD(c, c0));
  _mm256_storeu_si256((vec *)st[3], VADD(d, d0));
}

static int has_avx2(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2");
}
#else
static int has_avx2(void) { return 0; }
#endif

static int simd;  // set once when the module loads

/** A file being hashed in one lane: its open descriptor and the bytes read but not yet hashed. */
typedef struct {
  int fd;
  uint32_t index;   // position in the batch
  uint64_t length;  // bytes read so far
  int padded;       // the end was reached and the padding appended: buffer ends the message
  size_t pos, end;  // unhashed bytes are buf[pos, end)
  uint8_t buf[CHUNK + 2 * BLOCK];
} Lane;

typedef struct {
  napi_env env;
  char *hex;           // 32 hex digits per file, in order (left as zeros for files with an error)
  napi_value errors;   // array of [index, errno]
  uint32_t error_count;
  double bytes;
} Output;

static void report_error(Output *out, uint32_t index, int error) {
  napi_value pair, value;
  napi_create_array_with_length(out->env, 2, &pair);
  napi_create_uint32(out->env, index, &value);
  napi_set_element(out->env, pair, 0, value);
  napi_create_int32(out->env, error, &value);
  napi_set_element(out->env, pair, 1, value);
  napi_set_element(out->env, out->errors, out->error_count++, pair);
}

static void report_digest(Output *out, uint32_t index, const uint32_t st[4]) {
  static const char hex[] = "0123456789abcdef";
  char text[32];
  for (int word = 0; word < 4; word++) {
    for (int byte = 0; byte < 4; byte++) {
      uint8_t x = (uint8_t)(st[word] >> (8 * byte));
      text[8 * word + 2 * byte] = hex[x >> 4];
      text[8 * word + 2 * byte + 1] = hex[x & 15];
    }
  }
  memcpy(out->hex + 32 * (size_t)index, text, 32);
}

/**
 * Makes at least one block ready in the lane: reads more, or at the end appends MD5's padding.
 * Returns 0, or an errno (the file is then dropped).
 */
static int fill(Lane *lane) {
  while (!lane->padded && lane->end - lane->pos < BLOCK) {
    size_t rest = lane->end - lane->pos;
    memmove(lane->buf, lane->buf + lane->pos, rest);
    lane->pos = 0;
    lane->end = rest;
    size_t wanted = CHUNK - rest;
    ssize_t n = read(lane->fd, lane->buf + rest, wanted);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    lane->length += (uint64_t)n;
    lane->end += (size_t)n;
    // A short read of a regular file is its end (as in the node:crypto path): most source files
    // end in their first read, and a second read to see 0 would cost a system call per file.
    if ((size_t)n < wanted) {
      // 0x80, zeros up to 56 mod 64, then the length in bits: one or two blocks.
      size_t at = lane->end;
      size_t pad = (at % BLOCK < 56 ? 56 : 120) - at % BLOCK;
      lane->buf[at] = 0x80;
      memset(lane->buf + at + 1, 0, pad - 1);
      uint64_t bits = lane->length * 8;
      for (int i = 0; i < 8; i++) lane->buf[at + pad + i] = (uint8_t)(bits >> (8 * i));
      lane->end = at + pad + 8;
      lane->padded = 1;
    }
  }
  return 0;
}

/** Opens files in order until one opens, or the batch runs out; returns 1 when the lane got one. */
static int start_next(Lane *lane, uint32_t st[4][LANES], int j, const char *prefix, size_t prefix_length,
    const char **names, uint32_t count, uint32_t *next, Output *out) {
  char path[PATH_MAX_BYTES];
  while (*next < count) {
    uint32_t index = (*next)++;
    const char *name = *names;
    size_t length = strlen(name);
    *names += length + 1;
    if (prefix_length + length >= sizeof path - 1) {
      report_error(out, index, ENAMETOOLONG);
      continue;
    }
    memcpy(path, prefix, prefix_length);
    memcpy(path + prefix_length, name, length);
    path[prefix_length + length] = 0;
    // O_NONBLOCK: a fifo that slipped in fails to read instead of hanging the thread.
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      report_error(out, index, errno);
      continue;
    }
    lane->fd = fd;
    lane->index = index;
    lane->length = 0;
    lane->padded = 0;
    lane->pos = lane->end = 0;
    for (int w = 0; w < 4; w++) st[w][j] = IV[w];
    int error = fill(lane);
    if (error == 0) return 1;
    close(fd);
    report_error(out, index, error);
  }
  return 0;
}

static void free_lanes(napi_env env, void *lanes, void *hint) {
  (void)env;
  (void)hint;
  free(lanes);
}

static void finish(Lane *lane, uint32_t st[4][LANES], int j, Output *out) {
  uint32_t digest[4] = { st[0][j], st[1][j], st[2][j], st[3][j] };
  report_digest(out, lane->index, digest);
  out->bytes += (double)lane->length;
  close(lane->fd);
}

/** Hashes the lane's file to its end, one stream on its own. */
static void finish_scalar(Lane *lane, uint32_t st[4][LANES], int j, Output *out) {
  uint32_t state[4] = { st[0][j], st[1][j], st[2][j], st[3][j] };
  for (;;) {
    while (lane->end - lane->pos >= BLOCK) {
      md5_block(state, lane->buf + lane->pos);
      lane->pos += BLOCK;
    }
    if (lane->padded) break;
    int error = fill(lane);
    if (error) {
      close(lane->fd);
      report_error(out, lane->index, error);
      return;
    }
  }
  for (int w = 0; w < 4; w++) st[w][j] = state[w];
  finish(lane, st, j, out);
}

/**
 * hashFiles(prefix: Buffer, paths: string) → [digests: string, errors: [index, errno][], bytes]
 * `prefix` is the root with a trailing slash; `paths` are byte paths as one latin1 string, NUL
 * between them (file names have none); `digests` has 32 hex digits per path. One string each way: per-file N-API
 * calls cost about as much as hashing a small file.
 */
static napi_value hash_files(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *prefix_data = NULL;
  size_t prefix_length = 0, paths_length = 0;
  uint32_t count = 0;
  if (argc < 2 || napi_get_buffer_info(env, argv[0], &prefix_data, &prefix_length) != napi_ok
      || napi_get_value_string_latin1(env, argv[1], NULL, 0, &paths_length) != napi_ok || prefix_length >= PATH_MAX_BYTES / 2) {
    napi_throw_type_error(env, NULL, "hashFiles(prefix: Buffer, paths: string)");
    return NULL;
  }
  char *paths = malloc(paths_length + 1);
  if (!paths) {
    napi_throw_error(env, "ENOMEM", "out of memory for the hashing buffers");
    return NULL;
  }
  napi_get_value_string_latin1(env, argv[1], paths, paths_length + 1, &paths_length);
  if (paths_length > 0) count = 1;
  for (size_t i = 0; i < paths_length; i++) count += paths[i] == 0;
  const char *names = paths;
  char *hex = calloc((size_t)count * 32 + 1, 1);
  if (!hex) {
    free(paths);
    napi_throw_error(env, "ENOMEM", "out of memory for the hashing buffers");
    return NULL;
  }
  Output out = { env, hex, NULL, 0, 0 };
  napi_create_array(env, &out.errors);

  // The lanes' buffers live as long as the thread's environment: a batch is too short to pay for
  // mapping and faulting in a quarter megabyte.
  Lane *lanes = NULL;
  if (napi_get_instance_data(env, (void **)&lanes) != napi_ok || lanes == NULL) {
    lanes = malloc(sizeof(Lane) * LANES);
    if (!lanes || napi_set_instance_data(env, lanes, free_lanes, NULL) != napi_ok) {
      free(lanes);
      free(paths);
      free(hex);
      napi_throw_error(env, "ENOMEM", "out of memory for the hashing buffers");
      return NULL;
    }
  }
  uint32_t st[4][LANES];
  static const uint8_t idle_block[BLOCK];
  int active[LANES] = { 0 };
  uint32_t next = 0;
  for (;;) {
    int busy = 0;
    for (int j = 0; j < LANES; j++) {
      if (!active[j]) active[j] = start_next(&lanes[j], st, j, prefix_data, prefix_length, &names, count, &next, &out);
      busy += active[j];
    }
    if (busy == 0) break;
#ifdef HAVE_X86
    // With fewer than three files left, one stream at a time beats lanes that mostly idle.
    if (busy >= 3 && simd) {
      // Hash as many blocks as every busy lane has buffered, then refill and restart lanes.
      size_t blocks = SIZE_MAX;
      for (int j = 0; j < LANES; j++) {
        if (active[j] && (lanes[j].end - lanes[j].pos) / BLOCK < blocks) blocks = (lanes[j].end - lanes[j].pos) / BLOCK;
      }
      for (size_t k = 0; k < blocks; k++) {
        const uint8_t *ptrs[LANES];
        for (int j = 0; j < LANES; j++) ptrs[j] = active[j] ? lanes[j].buf + lanes[j].pos + k * BLOCK : idle_block;
        md5x8_block(st, ptrs);
      }
      for (int j = 0; j < LANES; j++) {
        if (!active[j]) continue;
        Lane *lane = &lanes[j];
        lane->pos += blocks * BLOCK;
        if (lane->padded && lane->pos == lane->end) {
          finish(lane, st, j, &out);
          active[j] = 0;
        } else {
          int error = fill(lane);
          if (error) {
            close(lane->fd);
            report_error(&out, lane->index, error);
            active[j] = 0;
          }
        }
      }
      continue;
    }
#endif
    for (int j = 0; j < LANES; j++) {
      if (active[j]) finish_scalar(&lanes[j], st, j, &out);
      active[j] = 0;
    }
  }
  napi_value result, bytes, digests;
  napi_create_string_latin1(env, hex, (size_t)count * 32, &digests);
  free(paths);
  free(hex);
  napi_create_array_with_length(env, 3, &result);
  napi_create_double(env, out.bytes, &bytes);
  napi_set_element(env, result, 0, digests);
  napi_set_element(env, result, 1, out.errors);
  napi_set_element(env, result, 2, bytes);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "hashFiles", NAPI_AUTO_LENGTH, hash_files, NULL, &fn);
  napi_set_named_property(env, exports, "hashFiles", fn);
  simd = has_avx2();
  napi_value simd_value;
  napi_get_boolean(env, simd, &simd_value);
  napi_set_named_property(env, exports, "simd", simd_value);
  return exports;
}

NAPI_MODULE_INIT() {
  return init(env, exports);
}
