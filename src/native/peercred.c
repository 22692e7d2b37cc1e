// The credentials of the process at the other end of a Unix socket (SO_PEERCRED), which Node does
// not expose: the serve daemon's write policy goes by the connecting build user's uid and groups.
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

// peerCredentials(fd) -> [pid, uid, gid]; throws with the errno text when the fd is no Unix socket.
static napi_value peer_credentials(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
    napi_throw_type_error(env, NULL, "peerCredentials(fd): fd must be a number");
    return NULL;
  }
  struct ucred cred;
  socklen_t length = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) != 0) {
    napi_throw_error(env, NULL, strerror(errno));
    return NULL;
  }
  napi_value result, value;
  napi_create_array_with_length(env, 3, &result);
  napi_create_int32(env, cred.pid, &value);
  napi_set_element(env, result, 0, value);
  napi_create_uint32(env, cred.uid, &value);
  napi_set_element(env, result, 1, value);
  napi_create_uint32(env, cred.gid, &value);
  napi_set_element(env, result, 2, value);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "peerCredentials", NAPI_AUTO_LENGTH, peer_credentials, NULL, &fn);
  napi_set_named_property(env, exports, "peerCredentials", fn);
  return exports;
}
