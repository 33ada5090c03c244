import Foundation
import GRDB
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore
import LinliTesting
import SwiftProtobuf
import Testing

/// A snapshot signed by a certified server is still not trusted for keys:
/// a new device derives its keys and revocations from the file's verified
/// trust records (PROTOCOL.md 2.4), so a server that plants a key or drops
/// a revocation in the file gains nothing for what the device receives
/// after it.
@Suite struct SnapshotTrustTests {
    @Test func aSnapshotCannotPlantAKeyOrDropARevocation() throws {
        let world = try TrustWorld()
        let server = Fixtures.server
        let inspector = Fixtures.identity(60, user: "巡查员")
        let lost = Fixtures.identity(61, user: "丢失的手机")
        let madeUp = Fixtures.identity(62, user: "不存在的设备")
        try world.certify(server, role: .server)
        try world.certify(inspector, role: .inspector, grids: ["G1"])
        try world.certify(lost, role: .inspector, grids: ["G1"])
        let lostPhone = try world.replica()
        _ = try lostPhone.apply(world.trustRecords())
        let (_, lostMade) = try makeChangeSets(lostPhone, as: lost, count: 4)
        try world.authorityStore.revoke(as: world.authority, device: lost.device, lastValidSeq: 2, reason: "手机丢失")

        let serverStore = try world.replica()
        _ = try serverStore.apply(world.trustRecords())
        #expect(try serverStore.apply(Array(lostMade.prefix(2)), policy: .gatekeeper).allSatisfy { $0.status == .applied })

        let folder = Fixtures.TemporaryDirectory()
        let file = folder.path("snapshot.sqlite")
        let cursor = try serverStore.writeSnapshot(scopes: nil, to: file)
        // The server's key signs a file it altered: a staff key for a made-up
        // device, and no revocation of the lost phone.
        do {
            let tamper = try DatabaseQueue(path: file)
            try tamper.write { db in
                try db.execute(sql: "INSERT INTO linli_device_key (device, valid_from_seq, key_id, public_key, role, grids) VALUES (?, 1, ?, ?, 'staff', '')",
                               arguments: [madeUp.device.data, madeUp.key.publicKey.keyID, madeUp.key.publicKey.bytes])
                try db.execute(sql: "DELETE FROM linli_revocation")
            }
            try tamper.close()
        }
        let bytes = try Data(contentsOf: URL(fileURLWithPath: file))
        var manifest = Linli_V1_SnapshotManifest()
        manifest.format = 1
        manifest.serverDevice = server.device.data
        manifest.cursor = UInt64(cursor)
        manifest.takenAtMs = UInt64(Date().timeIntervalSince1970 * 1000)
        manifest.fileHash = Blake2b256.hash(bytes)
        manifest.fileBytes = UInt64(bytes.count)
        let manifestBytes: Data = try manifest.serializedBytes()
        let signature = server.key.sign(SnapshotWire.signingMessage(manifestBytes))

        // A device that knows another server refuses it outright.
        #expect(throws: LinliError.self) {
            _ = try ReplicaStore.adoptSnapshot(file: file, manifest: manifestBytes, signature: signature, authority: world.rootKey.publicKey,
                                               schema: Fixtures.schema, at: folder.path("other.sqlite"), cursorName: "server",
                                               expectedServer: Fixtures.identity(63).device)
        }
        let device = try ReplicaStore.adoptSnapshot(file: file, manifest: manifestBytes, signature: signature, authority: world.rootKey.publicKey,
                                                    schema: Fixtures.schema, at: folder.path("new.sqlite"), cursorName: "server",
                                                    expectedServer: server.device)

        // The made-up device's change set after the cursor is not accepted.
        let forged = try Fixtures.signed(madeUp, seq: 1, prev: Data(), hlc: 1_790_000_000_000 << 16, rows: [
            RowChange(table: "person", row: RowID.random(), writes: [
                FieldWrite(field: "_deleted", value: .boolean(false)), FieldWrite(field: "grid", value: .text("G1")),
                FieldWrite(field: "name", value: .text("假人")),
            ]),
        ])
        #expect(try device.apply([forged])[0].error?.code == .unknownKey)
        // The lost phone's change set 3 is refused as revoked.
        #expect(try device.apply([lostMade[2]])[0].error?.code == .revoked)
        // And an honest inspector's change set is taken as usual.
        let inspectorPhone = try world.replica()
        _ = try inspectorPhone.apply(world.trustRecords())
        let (_, honest) = try makeChangeSets(inspectorPhone, as: inspector, count: 1)
        #expect(try device.apply(honest)[0].status == .applied)
    }
}
