// One zstd frame per blob for the blob layout's packs (src/blobs): the pack task compresses a blob
// whole, restore decompresses it whole, each on a pool thread, synchronously. Linked against the
// system's libzstd; the contexts are kept per thread (instance data), not made per blob.
#define NAPI_VERSION 8
#include <node_api.h>
#include <stdlib.h>
#include <zstd.h>

typedef struct {
  ZSTD_CCtx *cctx;
  ZSTD_DCtx *dctx;
} Contexts;

static void free_contexts(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  Contexts *contexts = data;
  ZSTD_freeCCtx(contexts->cctx);
  ZSTD_freeDCtx(contexts->dctx);
  free(contexts);
}

// This thread's contexts, made on first use; NULL with an exception pending when there is no memory.
static Contexts *contexts_of(napi_env env) {
  Contexts *contexts = NULL;
  if (napi_get_instance_data(env, (void **)&contexts) == napi_ok && contexts != NULL) return contexts;
  contexts = calloc(1, sizeof(Contexts));
  if (contexts != NULL) {
    contexts->cctx = ZSTD_createCCtx();
    contexts->dctx = ZSTD_createDCtx();
    if (contexts->cctx != NULL && contexts->dctx != NULL && napi_set_instance_data(env, contexts, free_contexts, NULL) == napi_ok) return contexts;
    free_contexts(env, contexts, NULL);
  }
  napi_throw_error(env, "ENOMEM", "out of memory for a zstd context");
  return NULL;
}

// The bytes of a Uint8Array (a Buffer, or a view of shared memory).
static int bytes_of(napi_env env, napi_value value, void **data, size_t *length) {
  napi_typedarray_type type;
  if (napi_get_typedarray_info(env, value, &type, length, data, NULL, NULL) != napi_ok || type != napi_uint8_array) return 0;
  return 1;
}

// compress(src, dst, level): the frame's length in dst, or 0 when it does not fit (keep src as it is).
static napi_value compress(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  void *src, *dst;
  size_t src_length, dst_length;
  int32_t level;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3 || !bytes_of(env, argv[0], &src, &src_length) || !bytes_of(env, argv[1], &dst, &dst_length)
      || napi_get_value_int32(env, argv[2], &level) != napi_ok) {
    napi_throw_type_error(env, NULL, "compress(src: Uint8Array, dst: Uint8Array, level: number)");
    return NULL;
  }
  Contexts *contexts = contexts_of(env);
  if (contexts == NULL) return NULL;
  size_t written = ZSTD_compressCCtx(contexts->cctx, dst, dst_length, src, src_length, level);
  napi_value result;
  napi_create_double(env, ZSTD_isError(written) ? 0 : (double)written, &result);
  return result;
}

// decompress(src, dst): src is one frame whose content fills dst exactly; throws otherwise.
static napi_value decompress(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  void *src, *dst;
  size_t src_length, dst_length;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || !bytes_of(env, argv[0], &src, &src_length) || !bytes_of(env, argv[1], &dst, &dst_length)) {
    napi_throw_type_error(env, NULL, "decompress(src: Uint8Array, dst: Uint8Array)");
    return NULL;
  }
  Contexts *contexts = contexts_of(env);
  if (contexts == NULL) return NULL;
  size_t written = ZSTD_decompressDCtx(contexts->dctx, dst, dst_length, src, src_length);
  if (ZSTD_isError(written)) {
    napi_throw_error(env, "ZSTD", ZSTD_getErrorName(written));
    return NULL;
  }
  if (written != dst_length) {
    napi_throw_error(env, "ZSTD", "the frame is shorter than its blob");
    return NULL;
  }
  return NULL;
}

NAPI_MODULE_INIT() {
  const struct { const char *name; napi_callback fn; } functions[] = {
    {"compress", compress}, {"decompress", decompress},
  };
  for (size_t i = 0; i < sizeof functions / sizeof functions[0]; i++) {
    napi_value fn;
    napi_create_function(env, functions[i].name, NAPI_AUTO_LENGTH, functions[i].fn, NULL, &fn);
    napi_set_named_property(env, exports, functions[i].name, fn);
  }
  return exports;
}
