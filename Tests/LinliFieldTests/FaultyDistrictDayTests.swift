import Foundation
import LinliClient
import LinliCore
import LinliTesting
import Testing

/// A district day through a faulty network, with the real programs
/// (docs/RELIABILITY.md): `linli`, `linli-kiosk`, `linli-desk` and
/// `linli-admin` reach the real `linli-server` only through a
/// ``FaultProxy`` that, per connection and by seed, flips a byte of the
/// request or the answer, cuts, delays or sends the request twice; the
/// server is killed with SIGKILL twice and restarted on its store. Then
/// everyone syncs directly, and nothing anyone entered may be missing.
///
/// `LINLI_FAULT_SEEDS` (a count, default 3) and `LINLI_FAULT_SEED` (one
/// seed alone) choose the seeds; a failure names its seed and the command
/// that replays it.
@Suite(.serialized) struct FaultyDistrictDayTests {
    static var seeds: [UInt64] {
        let environment = ProcessInfo.processInfo.environment
        if let one = environment["LINLI_FAULT_SEED"].flatMap(UInt64.init) { return [one] }
        return (1...UInt64(environment["LINLI_FAULT_SEEDS"].flatMap(Int.init) ?? 3)).map { $0 }
    }

    @Test(arguments: seeds) func aDistrictDayThroughAFaultyNetworkLosesNothing(seed: UInt64) async throws {
        let replay = "LINLI_FAULT_SEED=\(seed) swift test --skip-build --filter FaultyDistrictDayTests"
        let district = try await District()
        try DeskCommandLineTests.addInspector(district, "zhao", user: "赵军")
        try DeskCommandLineTests.addDesk(district)
        try district.admin(["sync"] + district.auth + ["--server", district.url])
        let proxy = try FaultProxy(upstreamPort: district.port, seed: seed)
        defer { proxy.close() }
        let faulty = "http://127.0.0.1:\(proxy.port)"
        var failedSyncs = 0

        /// Syncs as a person would: again when it fails, up to five times.
        func sync(_ who: String) throws {
            for _ in 0..<5 {
                let result = try district.run(who, ["sync", "--server", faulty] + (who == "kiosk" ? [] : ["--attempts", "6", "--quiet"]))
                if result.status == 0 { return }
                failedSyncs += 1
                if ProcessInfo.processInfo.environment["LINLI_FAULT_VERBOSE"] != nil { print("seed \(seed): \(who): \(result.error)") }
                // What the person sees never names a library type.
                #expect(!result.error.contains("Error(") && !result.error.contains("HTTPClientError") && !result.error.contains("DecodingError"),
                        "seed \(seed): \(result.error)\nreplay: \(replay)")
            }
        }

        var entered: [String: [String]] = [:]
        var kioskReceipts = 0
        for round in 0..<6 {
            for (who, grid) in [("li", "G1"), ("zhao", "G1"), ("wang", "G2")] {
                let id = try district.add(who, "person", ["name=居民\(who)\(round)", "residence_type=户籍人口", "phone=1380000\(round)\(grid == "G1" ? 1 : 2)00"])
                entered[who, default: []].append(id)
            }
            _ = try district.json("kiosk", ["signup", "name=志愿者\(round)", "phone=1351234567\(round)", "address=幸福路\(round)号"])
            kioskReceipts += 1
            if round == 1, let shared = entered["li"]?.first {
                // li and zhao change the same phone while apart.
                _ = try district.json("li", ["edit", shared, "phone=13800000001"])
                _ = try district.json("zhao", ["edit", shared, "phone=13900000002"])
            }
            for who in ["li", "zhao", "wang", "kiosk"] { try sync(who) }
            if round == 2 || round == 4 {
                kill(district.server.processIdentifier, SIGKILL)
                district.server.waitUntilExit()
                try await district.startServer()
            }
            if round == 3 {
                // Staff settle the conflict from the desk, through the same network.
                let viaProxy = ["LINLI_SERVER": faulty]
                let queue = try Programs.run(Programs.built("linli-desk"), ["queue", "--json"] + district.device("desk"), environment: viaProxy)
                if queue.status == 0, let items = try? queue.json() as? [[String: Any]],
                   let id = items.first(where: { $0["field"] as? String == "phone" })?["id"] as? String {
                    let resolved = try Programs.run(Programs.built("linli-desk"),
                                                    ["resolve", id, "--pick", "1", "--note", "电话核实"] + district.device("desk"), environment: viaProxy)
                    #expect(resolved.status == 0 || resolved.error.contains("not sent yet") || resolved.error.contains("尚未发送"),
                            "seed \(seed): \(resolved.error)\nreplay: \(replay)")
                }
            }
        }

        // The network heals: everyone syncs directly, twice.
        for _ in 0..<2 {
            for who in ["li", "zhao", "wang", "kiosk", "zhang"] { _ = try district.sync(who) }
            _ = try Programs.run(Programs.built("linli-desk"), ["sync"] + district.device("desk"))
        }
        for who in ["li", "zhao", "wang", "kiosk"] { _ = try district.sync(who) }
        let counts = proxy.counts
        print("seed \(seed): faults \(counts.map { "\($0.key.rawValue) \($0.value)" }.sorted().joined(separator: ", ")); syncs retried by the person \(failedSyncs)")
        #expect((counts[.flipRequest] ?? 0) + (counts[.flipAnswer] ?? 0) > 0, "seed \(seed): no byte was flipped")

        // Everything each device entered is on every replica whose scope covers it.
        for (author, ids) in entered {
            let grid = author == "wang" ? "G2" : "G1"
            let readers = grid == "G1" ? ["li", "zhao", "zhang"] : ["wang", "zhang"]
            for reader in readers {
                for id in ids {
                    let shown = try district.run(reader, ["show", id, "--json"])
                    #expect(shown.status == 0, "seed \(seed): \(reader) lacks \(author)'s record \(id)\nreplay: \(replay)")
                }
            }
        }
        let liRecords = try district.status("li")["records"] as? [String: Int] ?? [:]
        #expect(liRecords["person"] == 12, "seed \(seed): li holds \(liRecords)\nreplay: \(replay)")
        #expect((try district.status("zhang")["records"] as? [String: Int])?["person"] == 18, "seed \(seed)\nreplay: \(replay)")
        let kiosk = try district.status("kiosk")
        #expect(kiosk["unsynced"] as? Int == 0, "seed \(seed): the kiosk still holds unsent submissions\nreplay: \(replay)")
        #expect(try district.status("li")["pending_submissions"] as? Int == kioskReceipts, "seed \(seed): li does not see every kiosk submission\nreplay: \(replay)")

        // Every replica agrees with the others scope by scope; conflicts are the same everywhere.
        let digests = try ["li", "zhao", "wang", "zhang"].map { ($0, try district.digests($0)) }
        let staff = digests.first { $0.0 == "zhang" }!.1
        for (who, theirs) in digests {
            for (scope, digest) in theirs where scope != "system" {
                #expect(staff[scope] == digest, "seed \(seed): \(who) disagrees with staff on \(scope)\nreplay: \(replay)")
            }
        }
        let conflicts = try ["li", "zhao", "zhang"].map { (try district.status($0)["conflicts"] as? [Any])?.count ?? -1 }
        #expect(Set(conflicts).count == 1, "seed \(seed): conflicts differ \(conflicts)\nreplay: \(replay)")

        // Every device says it is in step, from the server's signed heads.
        for who in ["li", "zhao", "wang", "kiosk", "zhang"] {
            let status = try district.status(who)
            #expect(status["in_step"] as? Bool == true, "seed \(seed): \(who) is not in step: \(status["differences"] ?? "")\nreplay: \(replay)")
        }

        // The server's history is authentic and its store intact.
        let audit = try Programs.run(Programs.built("linli-admin"), ["audit", "--data", district.folder.path("server/server.sqlite"),
                                                                      "--dir", district.folder.path("authority")])
        #expect(audit.status == 0, "seed \(seed): \(audit.output)\(audit.error)\nreplay: \(replay)")
    }
}
