import AsyncHTTPClient
import Foundation
import LinliCore
import LinliProtocol
import LinliStore
import SwiftProtobuf

/// Whether a device is in step with its server, from the comparison of
/// the server's signed heads with what the replica holds (PROTOCOL.md
/// 2.6), not from local counters alone.
public struct SyncStep: Sendable, Equatable, Codable {
    /// When the comparison was made (the device's clock, ms since 1970).
    public var checkedAtMs: UInt64
    /// The server's clock in its signed heads answer.
    public var serverTimeMs: UInt64
    /// No difference left: the server holds everything this device made,
    /// and this device everything the server holds in its scopes.
    public var inStep: Bool
    /// What differs, for a person, one line each.
    public var differences: [String]

    enum CodingKeys: String, CodingKey {
        case checkedAtMs = "checked_at_ms"
        case serverTimeMs = "server_time_ms"
        case inStep = "in_step"
        case differences
    }

    static func key(_ cursorName: String) -> String { "step:" + cursorName }

    /// The last comparison stored in `store` for the server `cursorName`.
    public static func last(in store: ReplicaStore, cursorName: String) throws -> SyncStep? {
        guard let text = try store.clientValue(key(cursorName)) else { return nil }
        return try? JSONDecoder().decode(SyncStep.self, from: Data(text.utf8))
    }
}

extension SyncClient {
    /// One device's difference with the server.
    struct Difference {
        enum Kind { case lacksHere, lacksThere, lostOwn, forked, aheadOfOwn }
        var kind: Kind
        var device: DeviceID
        var local: UInt64
        var server: UInt64
    }

    /// Anti-entropy (PROTOCOL.md 2.6): asks the server for its heads,
    /// compares them with the replica's chain heads, repairs what it can (pulls what
    /// this replica lacks by device range, without rewinding the cursor;
    /// sends again what the server lost of this device's own), compares
    /// once more after a repair, and stores the result for `status`.
    func compareHeads(_ http: any SyncTransport, _ report: inout SyncReport, _ progress: @Sendable (SyncProgress) -> Void,
                      ownOnly: Bool = false) async throws {
        var (heads, differences) = try await heads(http, &report, progress, ownOnly: ownOnly)
        if differences.contains(where: { $0.kind == .lacksHere }), Int64(clamping: heads.logEnd) > (try store.cursor(cursorName)) {
            // Committed since this sync's pull: the ordinary pull brings it.
            try await pull(http, &report, progress)
            differences = try compare(heads, ownOnly: ownOnly)
        }
        if differences.contains(where: { $0.kind == .lacksHere || $0.kind == .lostOwn }) {
            for difference in differences.prefix(Limits.repairDevicesPerSyncMax) {
                switch difference.kind {
                case .lacksHere:
                    report.repaired += try await repair(http, difference, &report, progress)
                case .lostOwn:
                    try store.rewindAcknowledgement(device: identity.device, to: difference.server, peer: cursorName)
                    let before = report.pushed
                    try await push(http, &report, progress)
                    report.repaired += report.pushed - before
                default:
                    break
                }
            }
            (heads, differences) = try await self.heads(http, &report, progress, ownOnly: ownOnly)
        }
        // A server restored from an older backup numbers its log anew: the
        // device's cursor must not stay beyond the server's last position.
        // (What arrived at the server since is repaired by device above.)
        let cursor = try store.cursor(cursorName)
        if !ownOnly, Int64(clamping: heads.logEnd) < cursor {
            try store.rewindCursor(cursorName, to: Int64(clamping: heads.logEnd))
            report.cursor = Int64(clamping: heads.logEnd)
        }
        let step = SyncStep(checkedAtMs: clock() >> 0, serverTimeMs: heads.takenAtMs, inStep: differences.isEmpty,
                            differences: differences.map(describe))
        try store.setClientValue(SyncStep.key(cursorName), String(decoding: try JSONEncoder().encode(step), as: UTF8.self))
        report.step = step
    }

    /// The server's signed heads and how they differ from the replica's.
    func heads(_ http: any SyncTransport, _ report: inout SyncReport, _ progress: @Sendable (SyncProgress) -> Void,
               ownOnly: Bool = false) async throws -> (Linli_V1_HeadsResponse, [Difference]) {
        let answer = try await send(http, "GET", "/v1/heads", body: Data(), report: &report, progress)
        let heads = try ServerAnswer.heads(answer.body)
        return (heads, try compare(heads, ownOnly: ownOnly))
    }

    /// How the server's heads differ from what the replica holds.
    func compare(_ heads: Linli_V1_HeadsResponse, ownOnly: Bool = false) throws -> [Difference] {
        let local = try store.chainHeads()
        let acknowledged = try store.acknowledged(device: identity.device, peer: cursorName)
        var differences: [Difference] = []
        var sawOwn = false
        for head in heads.heads {
            let device = try ServerAnswer.device(of: head)
            let mine = local[device]
            let held = mine?.seq ?? 0
            if device == identity.device {
                sawOwn = true
                if head.seq < acknowledged {
                    differences.append(Difference(kind: .lostOwn, device: device, local: acknowledged, server: head.seq))
                } else if head.seq > held {
                    differences.append(Difference(kind: .aheadOfOwn, device: device, local: held, server: head.seq))
                } else if head.seq < held {
                    differences.append(Difference(kind: .lacksThere, device: device, local: held, server: head.seq))
                } else if let mine, mine.hash != head.hash {
                    differences.append(Difference(kind: .forked, device: device, local: held, server: head.seq))
                }
                continue
            }
            if ownOnly { continue }
            if held < head.seq {
                differences.append(Difference(kind: .lacksHere, device: device, local: held, server: head.seq))
            } else if held == head.seq, let mine, mine.hash != head.hash {
                differences.append(Difference(kind: .forked, device: device, local: held, server: head.seq))
            }
            // A replica holding more of another device than the server
            // (after a restore) is that device's to send again.
        }
        let own = local[identity.device]?.seq ?? 0
        if !sawOwn, acknowledged > 0 {
            differences.append(Difference(kind: .lostOwn, device: identity.device, local: acknowledged, server: 0))
        } else if !sawOwn, own > 0 {
            differences.append(Difference(kind: .lacksThere, device: identity.device, local: own, server: 0))
        }
        return differences
    }

    /// Pulls one device's change sets after what the replica holds of it,
    /// page by page; the main cursor does not move.
    func repair(_ http: any SyncTransport, _ difference: Difference, _ report: inout SyncReport,
                _ progress: @Sendable (SyncProgress) -> Void) async throws -> Int {
        var after = difference.local
        var fetched = 0
        for _ in 0..<Limits.repairPagesPerDeviceMax {
            let path = "/v1/pull?device=\(difference.device.hex)&after_seq=\(after)&limit=\(Limits.pullChangeSetsMax)"
            let answer = try await send(http, "GET", path, body: Data(), report: &report, progress)
            let (page, newest) = try ServerAnswer.repair(answer.body, device: difference.device, after: after)
            let offered = page.changeSets.map {
                OfferedChangeSet(envelope: $0.envelope, scopedPredecessor: $0.hasScopedPredecessor ? $0.scopedPredecessor : nil)
            }
            if !offered.isEmpty { _ = try store.apply(offered) }
            fetched += offered.count
            progress(SyncProgress(phase: .pull, done: report.pulled + fetched, cursor: report.cursor,
                                  message: "repaired \(fetched) of device \(difference.device.hex.prefix(8))"))
            if !page.more || newest == after || newest >= difference.server { break }
            after = newest
        }
        return fetched
    }

    func describe(_ difference: Difference) -> String {
        let device = difference.device.hex
        switch difference.kind {
        case .lacksHere:
            return "此设备缺少设备 \(device.prefix(8)) 的第 \(difference.local + 1) 至 \(difference.server) 个变更集 · this device lacks change sets \(difference.local + 1) to \(difference.server) of device \(device)"
        case .lacksThere:
            return "服务器缺少本设备的第 \(difference.server + 1) 至 \(difference.local) 个变更集，下次同步会重新发送 · the server lacks this device's change sets \(difference.server + 1) to \(difference.local); the next sync sends them again"
        case .lostOwn:
            return "服务器丢失了本设备已确认的第 \(difference.server + 1) 至 \(difference.local) 个变更集（可能从旧备份恢复），下次同步会重新发送 · the server lost this device's acknowledged change sets \(difference.server + 1) to \(difference.local) (restored from an older backup?); the next sync sends them again"
        case .forked:
            return "设备 \(device.prefix(8)) 的第 \(difference.server) 个变更集在此设备与服务器上不同：请告知管理员 · change set \(difference.server) of device \(device) differs between this device and the server: tell the administrator"
        case .aheadOfOwn:
            return "服务器持有本设备的第 \(difference.local + 1) 至 \(difference.server) 个变更集，而此副本没有（设备被复制或从旧备份恢复？）：请告知管理员 · the server holds change sets \(difference.local + 1) to \(difference.server) of this device that this replica does not (a cloned device, or a replica restored from a backup?): tell the administrator"
        }
    }
}

extension SyncClient {
    /// The newest change set the server holds of each device this device
    /// may see, from its signed heads answer (PROTOCOL.md 2.6): what an
    /// administrator's device list shows as "last seen".
    public func serverHeads() async throws -> [DeviceID: UInt64] {
        try await withTransport { http in
            var report = SyncReport()
            // Only the answer: nothing here is compared with the replica.
            let answer = try await send(http, "GET", "/v1/heads", body: Data(), report: &report, { _ in })
            var result: [DeviceID: UInt64] = [:]
            for head in try ServerAnswer.heads(answer.body).heads { result[try ServerAnswer.device(of: head)] = head.seq }
            return result
        }
    }
}
