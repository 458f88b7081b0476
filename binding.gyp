{
  "targets": [
    {
      "target_name": "kiln_native",
      "sources": ["<!@(node -e \"const fs=require('fs');console.log(fs.readdirSync('native/src').filter(f=>f.endsWith('.cc')).map(f=>'native/src/'+f).join(' '))\")"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags": ["-Wall", "-Wextra", "-Werror"],
      "cflags_cc": ["-std=c++20", "-Wall", "-Wextra", "-Werror", "-O3"]
    },
    {
      "target_name": "kiln_fast",
      "type": "static_library",
      "sources": ["native/fastpath/fast_path.cc"],
      "include_dirs": ["native/src"],
      "defines": ["LIBUS_USE_LIBUV", "LIBUS_NO_SSL", "UWS_WITH_PROXY", "UWS_HTTPRESPONSE_NO_WRITEMARK", "UWS_REMOTE_ADDRESS_USERSPACE"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags": ["-fPIC", "-Wall", "-Wextra", "-Werror"],
      "cflags_cc": ["-std=c++20", "-O3", "-Wall", "-Wextra", "-Werror", "-isystem", "../native/uws/uWebSockets/src", "-isystem", "../native/uws/uSockets/src"]
    },
    {
      "target_name": "kiln_uws",
      "dependencies": ["kiln_fast"],
      "sources": [
        "native/uws/uSockets/src/bsd.c",
        "native/uws/uSockets/src/context.c",
        "native/uws/uSockets/src/loop.c",
        "native/uws/uSockets/src/socket.c",
        "native/uws/uSockets/src/udp.c",
        "native/uws/uSockets/src/eventing/libuv.c",
        "native/uws/binding/addon.cpp"
      ],
      "include_dirs": ["native/uws/uSockets/src", "native/uws/uWebSockets/src", "native/fastpath", "native/src"],
      "defines": ["LIBUS_USE_LIBUV", "LIBUS_NO_SSL", "UWS_WITH_PROXY", "UWS_HTTPRESPONSE_NO_WRITEMARK", "UWS_REMOTE_ADDRESS_USERSPACE"],
      "cflags!": ["-Wall", "-Wextra", "-fno-exceptions"],
      "cflags_cc!": ["-Wall", "-Wextra", "-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags": ["-O3"],
      "cflags_cc": ["-std=c++20", "-O3"]
    }
  ]
}
