#!/usr/bin/env bash
# Regenerates Sources/LinliProtocol/Generated/*.pb.swift from Protocol/*.proto.
#
# Needs Debian's `protoc` (apt-get install protobuf-compiler) and
# `protoc-gen-swift`, built from the swift-protobuf that Package.swift
# pins (1.39.0) when none is on the PATH. The generated code is committed, so a normal
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
    # The package's own checkout of swift-protobuf (the pinned version).
    echo "building protoc-gen-swift from the package's swift-protobuf (about a minute)" >&2
    swift build --product protoc-gen-swift >&2
    plugin="$(swift build --show-bin-path)/protoc-gen-swift"
  fi
fi
out=Sources/LinliProtocol/Generated
mkdir -p "$out"
protoc --plugin=protoc-gen-swift="$plugin" \
  --swift_opt=Visibility=Public \
  --swift_out="$out" \
  -I Protocol Protocol/linli.proto
echo "generated: $(ls "$out")"
