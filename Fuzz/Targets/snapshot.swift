// Feeds: a bootstrap snapshot's manifest as the device downloads it
// (PROTOCOL.md 2.4), as lines: the Linli-Snapshot-Signature (hex), the
// downloaded file's size in bytes and its BLAKE2b-256 (hex), the scopes
// of the change sets the file holds (comma-separated), then the manifest
// bytes (Linli_V1_SnapshotManifest).
//
// Calls the checks ReplicaStore.adoptSnapshot makes on the manifest, in
// LinliProtocol's SnapshotManifest: decoding, format, server device and
// cursor; the file's size and hash; the server and the age; the signature against the server key
// of Protocol/vectors/protocol/snapshot-manifest.json; the file's scopes.
// Each check is run even when an earlier one refused, so each sees every
// manifest that decodes. (The SQLite file itself is not fuzzed here.)
import Foundation
import FuzzSupport
import LinliCore
import LinliCrypto
import LinliProtocol

let server = Repository.publicKey("protocol/snapshot-manifest")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let (lines, bytes) = FuzzInput(data, size).fields(4)
    let manifest: SnapshotManifest
    do { manifest = try SnapshotManifest(decoding: bytes) } catch { return 0 }
    precondition(manifest.cursor >= 0 && UInt64(manifest.cursor) == manifest.wire.cursor)

    let fileBytes = lines[1].flatMap { Int64($0) } ?? -1
    let fileHash = lines[2].flatMap { Hex.decodeData($0) } ?? Data()
    do {
        try manifest.checkFile(bytes: fileBytes, hash: fileHash)
        precondition(fileBytes >= 0 && UInt64(fileBytes) == manifest.wire.fileBytes && fileHash == manifest.wire.fileHash)
    } catch {
        precondition(error.code == .damagedFile)
    }
    let signature = lines[0].flatMap { Hex.decodeData($0) } ?? Data()
    do { try manifest.checkSignature(signature, key: server) } catch { precondition(error.code == .badSignature) }
    let held = (lines[3] ?? "").split(separator: ",", omittingEmptySubsequences: false).map(String.init)
    do { try manifest.checkScopes(held) } catch { precondition(error.code == .outOfScope) }

    // The server the device was enrolled with: its own, none known, another.
    do { try manifest.checkServer(expected: manifest.serverDevice) } catch { preconditionFailure("its own server refused: \(error)") }
    do { try manifest.checkServer(expected: nil) } catch { preconditionFailure("no expected server refused: \(error)") }
    let other = DeviceID(bytes: Data(repeating: 0xA5, count: 16))!
    do {
        try manifest.checkServer(expected: other)
        precondition(manifest.serverDevice == other)
    } catch {
        precondition(error.code == .notPermitted && manifest.serverDevice != other)
    }
    // The device's clock around the manifest's time and at the extremes:
    // whatever is accepted lies within the drift ahead and the age behind.
    let taken = manifest.wire.takenAtMs
    let drift = Limits.clockDriftMillisecondsMax, ageMax = UInt64(Limits.snapshotAdoptAgeSecondsMax) * 1000
    for now in [taken, taken &+ ageMax, taken &+ ageMax &+ 1, taken &- drift, taken &- drift &- 1, 0, UInt64.max] {
        do {
            try manifest.checkAge(now: now)
            precondition(taken <= now || taken - now <= drift, "accepted a snapshot from \(taken - now) ms ahead")
            precondition(now <= taken || now - taken <= ageMax, "accepted a snapshot \(now - taken) ms old")
        } catch {
            precondition(error.code == .staleRequest)
        }
    }
    return 0
}
