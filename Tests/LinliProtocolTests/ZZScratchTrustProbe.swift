import Foundation
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore
import LinliTesting
import Testing

// TEMPORARY probe, to be deleted.
@Suite struct ZZScratchTrustProbe {
    let root = SigningKey(seed: SecretBytes(copying: Data(repeating: 0xA0, count: 32)))
    var auth: DeviceIdentity { DeviceIdentity(device: Authority.deviceID(root: root.publicKey), key: root, user: "admin") }
    func store(_ path: String? = nil) throws -> ReplicaStore { try ReplicaStore(path: path, schema: Fixtures.schema, authority: root.publicKey) }

    func changes(_ id: DeviceIdentity, _ range: ClosedRange<UInt64>, prev: Data = Data(), keys: [UInt64: DeviceIdentity] = [:], grid: String = "G1", row: RowID = RowID(high: 1, low: 1)) throws -> [SignedChangeSet] {
        var out: [SignedChangeSet] = []
        var prev = prev
        for seq in range {
            let signer = keys[seq] ?? id
            let cs = try Fixtures.signed(signer, seq: seq, prev: prev, hlc: (1000 + seq) << 16, scope: .grid(grid), rows: [
                RowChange(table: "person", row: row, writes: seq == 1 ? [FieldWrite(field: "grid", value: .text(grid)), FieldWrite(field: "name", value: .text("n\(seq)"))] : [FieldWrite(field: "name", value: .text("n\(seq)"))])])
            out.append(cs); prev = cs.hash
        }
        return out
    }

    @Test func p1_certificateAfterMergedChangeSets() throws {
        let authStore = try store()
        let a = Fixtures.identity(41)
        let k2 = DeviceIdentity(device: a.device, key: SigningKey(seed: SecretBytes(copying: Data(repeating: 0x42, count: 32))), user: "a")
        try authStore.issueCertificate(as: auth, device: a.device, publicKey: a.key.publicKey, role: .staff, grids: [])
        let made = try changes(a, 1...3)
        let x = try store(); _ = try x.apply(authStore.changeSets(scopes: [.system]).map(\.envelope)); _ = try x.apply(made)
        try authStore.issueCertificate(as: auth, device: a.device, publicKey: k2.key.publicKey, role: .staff, grids: [], validFromSeq: 2)
        let records = try authStore.changeSets(scopes: [.system]).map(\.envelope)
        let xo = try x.apply(records)
        print("P1 X after cert2:", xo.map(\.description))
        let y = try store(); _ = try y.apply(records); let yo = try y.apply(made)
        print("P1 Y:", yo.map(\.description))
        print("P1 digests equal:", try x.stateDigest() == y.stateDigest(), "X audit:", try x.audit().problems)
    }

    @Test func p2_sameValidFromReplaces() throws {
        let authStore = try store()
        let a = Fixtures.identity(43)
        let k2 = SigningKey(seed: SecretBytes(copying: Data(repeating: 0x44, count: 32)))
        try authStore.issueCertificate(as: auth, device: a.device, publicKey: a.key.publicKey, role: .inspector, grids: ["G1", "G2"])
        let made = try changes(a, 1...2, grid: "G2")
        let x = try store(); _ = try x.apply(authStore.changeSets(scopes: [.system]).map(\.envelope)); _ = try x.apply(made)
        try authStore.issueCertificate(as: auth, device: a.device, publicKey: a.key.publicKey, role: .inspector, grids: ["G1"])
        let records = try authStore.changeSets(scopes: [.system]).map(\.envelope)
        _ = try x.apply(records)
        let y = try store(); _ = try y.apply(records); let yo = try y.apply(made)
        print("P2 Y:", yo.map(\.description))
        print("P2 digests equal:", try x.stateDigest() == y.stateDigest(), "X audit:", try x.audit().problems)
        _ = k2
    }

    @Test func p3_newKeyBeforeCertificate() throws {
        let authStore = try store()
        let a = Fixtures.identity(45)
        let k3 = DeviceIdentity(device: a.device, key: SigningKey(seed: SecretBytes(copying: Data(repeating: 0x46, count: 32))), user: "a")
        try authStore.issueCertificate(as: auth, device: a.device, publicKey: a.key.publicKey, role: .staff, grids: [])
        let first = try authStore.changeSets(scopes: [.system]).map(\.envelope)
        try authStore.issueCertificate(as: auth, device: a.device, publicKey: k3.key.publicKey, role: .staff, grids: [], validFromSeq: 3)
        let all = try authStore.changeSets(scopes: [.system]).map(\.envelope)
        let made = try changes(a, 1...4, keys: [3: k3, 4: k3])
        let z = try store(); _ = try z.apply(first)
        print("P3 Z before cert:", try z.apply(made).map(\.description))
        print("P3 Z cert2:", try z.apply(all).map(\.description))
        print("P3 Z again:", try z.apply(made).map(\.description))
        let w = try store(); _ = try w.apply(all); print("P3 W:", try w.apply(made).map(\.description))
        // Authority rotation: change set signed with the new key arriving before the rotation.
        let authStore2 = try store()
        let next = SigningKey(seed: SecretBytes(copying: Data(repeating: 0x47, count: 32)))
        let rotated = try authStore2.rotateAuthority(as: auth, to: next)
        try authStore2.issueCertificate(as: rotated.identity, device: a.device, publicKey: a.key.publicKey, role: .staff, grids: [])
        let recs = try authStore2.changeSets(scopes: [.system]).map(\.envelope)
        let v = try store()
        print("P3 V cert before rotation:", try v.apply([recs[1]]).map(\.description))
        print("P3 V rotation:", try v.apply([recs[0]]).map(\.description))
        print("P3 V cert again:", try v.apply([recs[1]]).map(\.description))
    }

    @Test func p4_certificateNamingTheAuthorityDevice() throws {
        let dir = Fixtures.TemporaryDirectory()
        let authStore = try store()
        let other = SigningKey(seed: SecretBytes(copying: Data(repeating: 0x48, count: 32)))
        try authStore.issueCertificate(as: auth, device: auth.device, publicKey: other.publicKey, role: .staff, grids: [])
        let r = try store(dir.path("r.sqlite"))
        print("P4 apply:", try r.apply(authStore.changeSets(scopes: [.system]).map(\.envelope)).map(\.description))
        // Next authority change set, signed with the root.
        let c = Fixtures.identity(49)
        let next = try authStore.issueCertificate(as: auth, device: c.device, publicKey: c.key.publicKey, role: .staff, grids: [])
        print("P4 next on r:", try r.apply(next).map(\.description))
        let r2 = try store(dir.path("r.sqlite"))
        print("P4 next after reopen:", try r2.apply(next).map(\.description))
        print("P4 audit:", try r2.audit().problems)
    }

    @Test func p5_auditIgnoresAuthorityRoleKeys() throws {
        let r = try store()
        let forged = SigningKey(seed: SecretBytes(copying: Data(repeating: 0x4A, count: 32)))
        try r.registerDeviceKey(device: auth.device, publicKey: forged.publicKey, validFromSeq: 1, role: .authority)
        let c = Fixtures.identity(50)
        let forgedAuth = DeviceIdentity(device: auth.device, key: forged, user: "x")
        let cs = try Fixtures.signed(forgedAuth, seq: 1, prev: Data(), hlc: 5 << 16, scope: .system, rows: [
            RowChange(table: TrustSchema.certificate, row: RowID(high: 9, low: 9), writes: [
                FieldWrite(field: "device", value: .bytes(c.device.data)), FieldWrite(field: "public_key", value: .bytes(c.key.publicKey.bytes)),
                FieldWrite(field: "role", value: .text("staff")), FieldWrite(field: "valid_from_seq", value: .integer(1))])])
        print("P5 forged apply:", try r.apply([cs]).map(\.description))
        print("P5 audit problems:", try r.audit().problems)
    }

    @Test func p6_staleCacheAfterRevocationInBatch() throws {
        let authStore = try store()
        let d = Fixtures.identity(51), e = Fixtures.identity(52)
        try authStore.issueCertificate(as: auth, device: d.device, publicKey: d.key.publicKey, role: .staff, grids: [])
        try authStore.issueCertificate(as: auth, device: e.device, publicKey: e.key.publicKey, role: .staff, grids: [])
        let certs = try authStore.changeSets(scopes: [.system]).map(\.envelope)
        let s = RowID(high: 7, low: 7)
        let d1 = try changes(d, 1...1, row: RowID(high: 6, low: 6))[0]
        let d2 = try Fixtures.signed(d, seq: 2, prev: d1.hash, hlc: 2000 << 16, scope: .grid("G1"), rows: [
            RowChange(table: "person", row: s, writes: [FieldWrite(field: "grid", value: .text("G1")), FieldWrite(field: "name", value: .text("s"))])])
        let z = try Fixtures.signed(e, seq: 1, prev: Data(), hlc: 3000 << 16, scope: .grid("G2"), rows: [
            RowChange(table: "person", row: s, writes: [FieldWrite(field: "grid", value: .text("G2")), FieldWrite(field: "name", value: .text("z"))])])
        let rev = try authStore.revoke(as: auth, device: d.device, lastValidSeq: 1, reason: "x")
        let x = try store(); _ = try x.apply(certs); _ = try x.apply([d1, d2])
        print("P6 X batch:", try x.apply(rev.map(\.envelope) + [z.envelope]).map(\.description))
        let y = try store(); _ = try y.apply(certs); _ = try y.apply(rev); _ = try y.apply([d1, d2])
        print("P6 Y z:", try y.apply([z]).map(\.description))
        print("P6 digests equal:", try x.stateDigest() == y.stateDigest())
    }
}
