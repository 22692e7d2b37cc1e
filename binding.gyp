{
  "variables": {
    # Set to 0 by src/native/install.js when libzstd's headers are missing: the other addons still build.
    "zstd%": 1
  },
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
    },
    {
      "target_name": "nbc_zstd",
      "conditions": [
        ["zstd==1", {
          "sources": ["src/native/zstd.c"],
          "cflags": ["-O2", "-Wall", "-Wextra"],
          "libraries": ["-lzstd"]
        }, {
          "type": "none"
        }]
      ]
    }
  ]
}
