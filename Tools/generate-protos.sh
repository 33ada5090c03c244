#!/usr/bin/env bash
# Regenerates Sources/LinliProtocol/Generated/*.pb.swift from Protocol/*.proto.
#
# Needs Debian's `protoc` (apt-get install protobuf-compiler) and
# `protoc-gen-swift` built from apple/swift-protobuf at the version that
# Package.swift pins (1.39.0). The generated code is committed, so a normal
# build never needs either tool.
#
#   PROTOC_GEN_SWIFT=/path/to/protoc-gen-swift Tools/generate-protos.sh
set -euo pipefail
cd "$(dirname "$0")/.."
plugin="${PROTOC_GEN_SWIFT:-}"
if [ -z "$plugin" ]; then
  if command -v protoc-gen-swift >/dev/null; then
    plugin=$(command -v protoc-gen-swift)
  else
    src=$(mktemp -d)
    echo "building protoc-gen-swift 1.39.0 in $src (about 2 minutes)" >&2
    git clone -q --branch 1.39.0 https://github.com/apple/swift-protobuf "$src/swift-protobuf"
    (cd "$src/swift-protobuf" && swift build -c release --product protoc-gen-swift >&2)
    plugin="$src/swift-protobuf/.build/release/protoc-gen-swift"
  fi
fi
out=Sources/LinliProtocol/Generated
mkdir -p "$out"
protoc --plugin=protoc-gen-swift="$plugin" \
  --swift_opt=Visibility=Public \
  --swift_out="$out" \
  -I Protocol Protocol/linli.proto
echo "generated: $(ls "$out")"
