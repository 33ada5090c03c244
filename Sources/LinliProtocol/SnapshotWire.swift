import Foundation
import LinliCore
import LinliCrypto
import SwiftProtobuf

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

/// A snapshot manifest as a device reads it before adopting the snapshot
/// (`ReplicaStore.adoptSnapshot`): decoded, with the checks that need no
/// replica. The checks that need one (the trust records, the signer's
/// role) are the store's; it calls these in its order.
public struct SnapshotManifest: Sendable {
    /// The manifest's bytes as received: what the signature covers.
    public let bytes: Data
    public let wire: Linli_V1_SnapshotManifest
    /// The server device that signed it.
    public let serverDevice: DeviceID
    /// The log position the snapshot holds everything through.
    public let cursor: Int64

    /// Decodes a manifest and checks its format, its server device and its
    /// cursor.
    public init(decoding bytes: Data) throws(LinliError) {
        let manifest: Linli_V1_SnapshotManifest
        do { manifest = try Linli_V1_SnapshotManifest(serializedBytes: bytes) } catch {
            throw LinliError(.malformed, "the snapshot manifest does not decode: \(error)")
        }
        guard manifest.format == 1 else {
            throw LinliError(.unsupportedFormat, "snapshot format \(manifest.format) is not known to this version", hint: "update the client, or replay from zero")
        }
        guard let serverDevice = DeviceID(bytes: manifest.serverDevice) else { throw LinliError(.malformed, "the snapshot names no server device") }
        // Positions are stored as signed 64-bit integers; a manifest's
        // numbers may be anything a UInt64 holds.
        guard let cursor = Int64(exactly: manifest.cursor) else {
            throw LinliError(.malformed, "the snapshot manifest's cursor \(manifest.cursor) is not a position", hint: "replay from zero")
        }
        self.bytes = bytes
        wire = manifest
        self.serverDevice = serverDevice
        self.cursor = cursor
    }

    /// Checks that the manifest names the server the device was enrolled
    /// with, when the device knows it.
    public func checkServer(expected: DeviceID?) throws(LinliError) {
        if let expected, serverDevice != expected {
            throw LinliError(.notPermitted, "the snapshot is signed for server \(serverDevice.hex), not \(expected.hex), the server this device was enrolled with",
                             hint: "check the server address, or replay from zero")
        }
    }

    /// Checks the manifest's `taken_at_ms` against the device's clock
    /// `now`: a server makes snapshots on demand and reuses one for
    /// snapshotAgeSecondsMax, so one older than snapshotAdoptAgeSecondsMax,
    /// or from further ahead than clockDriftMillisecondsMax, is a replayed
    /// or forged download.
    public func checkAge(now: UInt64) throws(LinliError) {
        let ageMax = UInt64(Limits.snapshotAdoptAgeSecondsMax) * 1000
        let taken = wire.takenAtMs
        guard taken <= now.addingReportingOverflow(Limits.clockDriftMillisecondsMax).partialValue,
              now < ageMax || taken >= now - ageMax else {
            throw LinliError(.staleRequest, "the snapshot was taken at \(taken) ms, more than \(Limits.snapshotAdoptAgeSecondsMax) s from this device's clock (\(now) ms)",
                             hint: "check the device's clock, then bootstrap again; or replay from zero")
        }
    }

    /// Checks the downloaded file's size and BLAKE2b-256 hash against the
    /// manifest's.
    public func checkFile(bytes size: Int64, hash: Data) throws(LinliError) {
        guard size >= 0, UInt64(size) == wire.fileBytes else {
            throw LinliError(.damagedFile, "the snapshot file has \(size) bytes; its manifest says \(wire.fileBytes)", hint: "download it again")
        }
        guard hash == wire.fileHash else {
            throw LinliError(.damagedFile, "the snapshot file's hash differs from its manifest's", hint: "download it again")
        }
    }

    /// Checks the server's signature over the manifest with `key`, the
    /// current key of ``serverDevice``.
    public func checkSignature(_ signature: Data, key: PublicKey) throws(LinliError) {
        guard key.verify(signature: signature, message: SnapshotWire.signingMessage(bytes)) else {
            throw LinliError(.badSignature, "the snapshot manifest's signature does not verify with server \(serverDevice.hex)'s key",
                             hint: "replay from zero and report the server")
        }
    }

    /// Checks that the scopes of the file's change sets are among the
    /// manifest's (a manifest naming no scopes holds every scope).
    public func checkScopes(_ held: [String]) throws(LinliError) {
        guard !wire.scopes.isEmpty else { return }
        let allowed = Set(wire.scopes)
        if let stray = held.first(where: { !allowed.contains($0) }) {
            throw LinliError(.outOfScope, "the snapshot holds change sets of scope \(stray), outside the scopes it names")
        }
    }
}
