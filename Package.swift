// swift-tools-version:6.1
import PackageDescription

// Every target builds in the Swift 6 language mode with the same strictness.
let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "Linli",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "LinliCore", targets: ["LinliCore"]),
        .library(name: "LinliCrypto", targets: ["LinliCrypto"]),
        .library(name: "LinliProtocol", targets: ["LinliProtocol"]),
        .library(name: "LinliStore", targets: ["LinliStore"]),
        .library(name: "LinliServer", targets: ["LinliServer"]),
        .library(name: "LinliClient", targets: ["LinliClient"]),
        .library(name: "LinliPostgres", targets: ["LinliPostgres"]),
        .executable(name: "linli-server", targets: ["linli-server"]),
        .executable(name: "linli-bench", targets: ["linli-bench"]),
        .executable(name: "linli-sim", targets: ["linli-sim"]),
        .executable(name: "linli-admin", targets: ["linli-admin"]),
        .executable(name: "linli", targets: ["linli"]),
        .executable(name: "linli-kiosk", targets: ["linli-kiosk"]),
        .executable(name: "linli-desk", targets: ["linli-desk"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", exact: "7.10.0"),
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/adam-fowler/compress-nio", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        .package(url: "https://github.com/vapor/postgres-nio", exact: "1.33.2"),
    ],
    targets: [
        // System libraries, found through pkg-config.
        .systemLibrary(name: "CSodium", pkgConfig: "libsodium", providers: [.apt(["libsodium-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),

        // The pure core: values, clocks, merge rules, limits. No SQLite, network or libsodium.
        .target(name: "LinliCore", swiftSettings: strict),
        // libsodium wrappers: Ed25519, BLAKE2b, sealed key files.
        .target(name: "LinliCrypto", dependencies: ["LinliCore", "CSodium"], swiftSettings: strict),
        // The wire form of change sets, signing and verification.
        .target(
            name: "LinliProtocol",
            dependencies: [
                "LinliCore", "LinliCrypto",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strict),
        // The replica store: log, field state and views on SQLite.
        .target(
            name: "LinliStore",
            dependencies: [
                "LinliCore", "LinliCrypto", "LinliProtocol", "CSQLite",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strict),

        // The server's store on PostgreSQL, for a city: several server
        // processes share one database. Nothing below it imports it.
        .target(
            name: "LinliPostgres",
            dependencies: [
                "LinliCore", "LinliProtocol",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict),

        // The sync server: push, pull, heads and status over HTTP, on Hummingbird.
        .target(
            name: "LinliServer",
            dependencies: [
                "LinliCore", "LinliCrypto", "LinliProtocol", "LinliStore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Mustache", package: "swift-mustache"),
            ],
            swiftSettings: strict),
        // The client library every client uses: the replica plus sync.
        .target(
            name: "LinliClient",
            dependencies: [
                "LinliCore", "LinliCrypto", "LinliProtocol", "LinliStore",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTPCompression", package: "swift-nio-extras"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "linli-server",
            dependencies: [
                "LinliServer", "LinliCore", "LinliCrypto", "LinliStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            path: "Clients/linli-server",
            swiftSettings: strict),

        // Fixtures shared by the tests, the simulator and the benchmark.
        .target(
            name: "LinliTesting",
            dependencies: ["LinliCore", "LinliCrypto", "LinliProtocol", "LinliStore",
                           .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            swiftSettings: strict),

        // The deterministic simulation: a server and devices in one
        // process, the network, the clock and crashes driven by a seed.
        .target(
            name: "LinliSimulation",
            dependencies: ["LinliCore", "LinliCrypto", "LinliProtocol", "LinliStore", "LinliServer", "LinliClient", "LinliTesting",
                           .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: strict),

        .executableTarget(
            name: "linli-bench",
            dependencies: [
                "LinliCore", "LinliCrypto", "LinliProtocol", "LinliStore", "LinliTesting", "LinliClient", "CSQLite",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Tools/linli-bench",
            swiftSettings: strict),
        .executableTarget(
            name: "linli-sim",
            dependencies: [
                "LinliCore", "LinliCrypto", "LinliProtocol", "LinliStore", "LinliTesting", "LinliClient", "LinliSimulation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Tools/linli-sim",
            swiftSettings: strict),

        // What the field clients share on the command line: the device
        // folder and PIN, progress, the interactive form, errors.
        .target(
            name: "LinliCLI",
            dependencies: [
                "LinliCore", "LinliCrypto", "LinliStore", "LinliClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "linli",
            dependencies: [
                "LinliCLI", "LinliClient", "LinliCore", "LinliProtocol", "LinliStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Clients/linli",
            swiftSettings: strict),
        .executableTarget(
            name: "linli-kiosk",
            dependencies: [
                "LinliCLI", "LinliClient", "LinliCore", "LinliProtocol", "LinliStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Clients/linli-kiosk",
            swiftSettings: strict),
        .executableTarget(
            name: "linli-desk",
            dependencies: [
                "LinliCLI", "LinliClient", "LinliCore", "LinliProtocol", "LinliStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Clients/linli-desk",
            swiftSettings: strict),

        .executableTarget(
            name: "linli-admin",
            dependencies: [
                "LinliCore", "LinliCrypto", "LinliProtocol", "LinliStore", "LinliClient", "LinliCLI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Clients/linli-admin",
            swiftSettings: strict),

        .testTarget(name: "LinliCoreTests", dependencies: ["LinliCore"], swiftSettings: strict),
        .testTarget(name: "LinliCryptoTests", dependencies: ["LinliCrypto", "LinliCore"], swiftSettings: strict),
        .testTarget(
            name: "LinliProtocolTests",
            dependencies: ["LinliProtocol", "LinliCore", "LinliCrypto", "LinliStore", "LinliTesting",
                           .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            swiftSettings: strict),
        .testTarget(
            name: "LinliServerTests",
            dependencies: ["LinliCore", "LinliCrypto", "LinliProtocol", "LinliStore", "LinliClient", "LinliServer", "LinliTesting", "LinliSimulation",
                           .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                           .product(name: "CompressNIO", package: "compress-nio"),
                           .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "Hummingbird", package: "hummingbird"),
                           .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: strict),
        .testTarget(
            name: "LinliClientTests",
            dependencies: ["LinliClient", "LinliCore", "LinliCrypto", "LinliProtocol", "LinliStore", "LinliTesting",
                           .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: strict),
        .testTarget(
            name: "LinliFieldTests",
            dependencies: ["LinliClient", "LinliCore", "LinliStore", "LinliTesting"],
            swiftSettings: strict),
        .testTarget(
            name: "LinliAdminTests",
            dependencies: ["LinliCore", "LinliCrypto", "LinliProtocol", "LinliStore", "LinliTesting"],
            swiftSettings: strict),
        .testTarget(
            name: "LinliPostgresTests",
            dependencies: ["LinliPostgres", "LinliCore", "LinliCrypto", "LinliProtocol", "LinliStore", "LinliTesting",
                           .product(name: "PostgresNIO", package: "postgres-nio"),
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .testTarget(
            name: "LinliStoreTests",
            dependencies: ["LinliStore", "LinliProtocol", "LinliCore", "LinliCrypto", "LinliTesting",
                           .product(name: "GRDB", package: "GRDB.swift"),
                           .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            swiftSettings: strict),
    ]
)
