{
  "targets": [
    {
      "target_name": "nbc_md5",
      "sources": ["src/native/md5.c"],
      "cflags": ["-O3", "-Wall", "-Wextra"],
      "defines": ["NAPI_DISABLE_CPP_EXCEPTIONS"]
    },
    {
      "target_name": "nbc_peercred",
      "sources": ["src/native/peercred.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
