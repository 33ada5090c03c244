import Foundation

/// How a bootstrap snapshot travels (PROTOCOL.md 2.4): the headers that
/// carry its manifest and signature, and what the server signs. The server
/// and the device both take them from here.
public enum SnapshotWire {
    /// Base64 of the `SnapshotManifest` bytes.
    public static let manifestHeader = "Linli-Snapshot-Manifest"
    /// Base64 of the server's Ed25519 signature over ``signingMessage(_:)``.
    public static let signatureHeader = "Linli-Snapshot-Signature"

    /// "linli/snapshot/v1\n" followed by the manifest bytes.
    public static func signingMessage(_ manifest: Data) -> Data {
        Data("linli/snapshot/v1\n".utf8) + manifest
    }
}
