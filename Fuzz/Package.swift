// swift-tools-version:6.1
import PackageDescription

// libFuzzer targets for the decoders that read hostile bytes
// (docs/SECURITY.md, "Fuzzing"). Fuzz/build.sh builds them with
// `--sanitize fuzzer`, which links libFuzzer and its main: each target
// defines only LLVMFuzzerTestOneInput, so it is compiled as a library file.
let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let core = Target.Dependency.product(name: "LinliCore", package: "Linli")
let crypto = Target.Dependency.product(name: "LinliCrypto", package: "Linli")
let proto = Target.Dependency.product(name: "LinliProtocol", package: "Linli")

let targets = ["envelope", "request", "answer", "snapshot", "field", "schema"]

/// One fuzz target: Fuzz/Targets/NAME.swift, the product fuzz-NAME. The
/// targets share the folder; each leaves out the others' files.
func fuzzTarget(_ name: String, _ dependencies: [Target.Dependency]) -> Target {
    .executableTarget(name: "fuzz-\(name)", dependencies: ["FuzzSupport"] + dependencies, path: "Targets",
                      exclude: targets.filter { $0 != name }.map { "\($0).swift" }, sources: ["\(name).swift"],
                      swiftSettings: strict + [.unsafeFlags(["-parse-as-library"])])
}

let package = Package(
    name: "LinliFuzz",
    platforms: [.macOS(.v14)],
    dependencies: [.package(name: "Linli", path: "..")],
    targets: [
        .target(name: "FuzzSupport", dependencies: [core, crypto], path: "Support", swiftSettings: strict),
        fuzzTarget("envelope", [core, crypto, proto]),
        fuzzTarget("request", [core, crypto, proto]),
        fuzzTarget("answer", [core, crypto, proto]),
        fuzzTarget("snapshot", [core, crypto, proto]),
        fuzzTarget("field", [core]),
        fuzzTarget("schema", [core]),
    ]
)
