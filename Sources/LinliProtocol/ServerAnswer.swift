import Foundation
import LinliCore
import SwiftProtobuf

/// How a device reads the server's answers once their signature has been
/// checked (``AnswerSignature``): pure functions of the answer's bytes,
/// which the sync client calls and the fuzz targets feed with hostile
/// bytes. A signature proves who sent an answer, not that it is sane, so
/// each function still refuses what the protocol does not allow with a
/// `LinliError`, never a trap.
public enum ServerAnswer {
    /// Decodes a verified answer; a server that signs what is not the
    /// message gets a clear error, not a parser's.
    public static func decode<M: SwiftProtobuf.Message>(_ type: M.Type, _ body: Data, _ what: String) throws(LinliError) -> M {
        do { return try M(serializedBytes: body) } catch {
            throw LinliError(.malformed, "the server's \(what) answer is signed but cannot be read as one",
                             hint: "nothing is lost; check that the server and this device run matching versions of Linli")
        }
    }

    /// The acknowledgement rule (PROTOCOL.md 2.1) alone, without the
    /// replica: a result counts only for the change set sent in its place,
    /// matched by hash and seq, and only while every earlier one counted.
    /// Returns the seq the acknowledgement moves to (0: none), how many
    /// were accepted, and the refusals among the counted results. Held,
    /// unknown-key or unmatched results end the run: the rest stays in the
    /// outbox.
    public static func acknowledgement(of sent: [SignedChangeSet], by results: [Linli_V1_PushResult])
        -> (through: UInt64, accepted: Int, refused: [Linli_V1_PushResult]) {
        var through: UInt64 = 0
        var accepted = 0
        var refused: [Linli_V1_PushResult] = []
        for (index, changeSet) in sent.enumerated() {
            guard index < results.count else { break }
            let result = results[index]
            guard result.hash == changeSet.hash, result.seq == changeSet.header.seq else { break }
            switch result.status {
            case "accepted", "duplicate": accepted += 1
            // Waiting for its key's certificate (a rotation not yet
            // published): the server takes it when the certificate comes,
            // so it is not settled; sent again until it is.
            case "refused" where result.code == LinliError.Code.unknownKey.rawValue: return (through, accepted, refused)
            case "refused": refused.append(result)
            default: return (through, accepted, refused)
            }
            through = changeSet.header.seq
        }
        return (through, accepted, refused)
    }

    /// A push answer (`POST /v1/push`) read against the change sets sent:
    /// the decoded response and the acknowledgement rule's outcome.
    public static func push(_ body: Data, sent: [SignedChangeSet]) throws(LinliError)
        -> (response: Linli_V1_PushResponse, through: UInt64, accepted: Int, refused: [Linli_V1_PushResult]) {
        let response = try decode(Linli_V1_PushResponse.self, body, "push")
        let rule = acknowledgement(of: sent, by: response.results)
        return (response, rule.through, rule.accepted, rule.refused)
    }

    /// A pull page (`GET /v1/pull?after=`) asked for after `after`: the
    /// page, its positions checked against the protocol, and its cursor.
    public static func pull(_ body: Data, after: Int64) throws(LinliError) -> (page: Linli_V1_PullResponse, positions: [Int64], cursor: Int64) {
        let page = try decode(Linli_V1_PullResponse.self, body, "pull")
        let positions = try checkedPositions(page, after: after)
        return (page, positions, Int64(page.cursor))
    }

    /// The positions of a signed page, checked against the protocol: each
    /// after `after` and after the one before, none past the page's cursor.
    public static func checkedPositions(_ page: Linli_V1_PullResponse, after: Int64) throws(LinliError) -> [Int64] {
        var last = after
        var positions: [Int64] = []
        positions.reserveCapacity(page.changeSets.count)
        for entry in page.changeSets {
            guard entry.position <= UInt64(Int64.max), Int64(entry.position) > last else {
                throw LinliError(.malformed, "the server's page is out of order: position \(entry.position) after \(last)",
                                 hint: "nothing is lost; sync again, and if it repeats tell the administrator")
            }
            last = Int64(entry.position)
            positions.append(last)
        }
        guard page.cursor <= UInt64(Int64.max), Int64(page.cursor) >= last else {
            throw LinliError(.malformed, "the server answered a pull after \(after) with cursor \(page.cursor), before what the page holds",
                             hint: "nothing is lost; sync again, and if it repeats tell the administrator")
        }
        return positions
    }

    /// A page of trust records (`GET /v1/trust`), which needs no server
    /// signature: each record verifies against the trust root alone.
    public static func trust(_ body: Data) throws(LinliError) -> Linli_V1_PullResponse {
        let page = try decode(Linli_V1_PullResponse.self, body, "trust")
        guard page.changeSets.count <= Limits.pullChangeSetsMax else {
            throw LinliError(.overLimit, "the server sent \(page.changeSets.count) trust records in one page; pullChangeSetsMax is \(Limits.pullChangeSetsMax)")
        }
        return page
    }

    /// A repair pull of one device's change sets after `after`
    /// (PROTOCOL.md 2.6): the page and the newest seq it holds (`after`
    /// when none). Every change set must decode, be `device`'s and come
    /// after `after`.
    public static func repair(_ body: Data, device: DeviceID, after: UInt64) throws(LinliError) -> (page: Linli_V1_PullResponse, newest: UInt64) {
        let page = try decode(Linli_V1_PullResponse.self, body, "repair pull")
        var newest = after
        for entry in page.changeSets {
            guard let signed = try? SignedChangeSet(envelope: entry.envelope), signed.header.device == device,
                  signed.header.seq > after else {
                throw LinliError(.malformed, "the server answered a repair pull of device \(device.hex) with another device's change set",
                                 hint: "nothing is lost; check that the server and this device run matching versions of Linli")
            }
            newest = max(newest, signed.header.seq)
        }
        return (page, newest)
    }

    /// The server's heads (`GET /v1/heads`, PROTOCOL.md 2.6).
    public static func heads(_ body: Data) throws(LinliError) -> Linli_V1_HeadsResponse {
        try decode(Linli_V1_HeadsResponse.self, body, "heads")
    }

    /// The device a head names; a head of any other length is refused.
    public static func device(of head: Linli_V1_Head) throws(LinliError) -> DeviceID {
        guard let device = DeviceID(bytes: head.device) else {
            throw LinliError(.malformed, "the server's heads name a device id of \(head.device.count) bytes",
                             hint: "nothing is lost; check that the server and this device run matching versions of Linli")
        }
        return device
    }

    /// The server's JSON error (`{"code", "message", "hint"}`) as a
    /// `LinliError`; an answer that is not one gets a code from the status.
    public static func failure(status: Int, body: Data) -> LinliError {
        let object = (try? JSONSerialization.jsonObject(with: body)) as? [String: String] ?? [:]
        let code = object["code"].flatMap(LinliError.Code.init(rawValue:)) ?? (status >= 500 ? .unavailable : .invalidInput)
        return LinliError(code, object["message"] ?? "the server answered HTTP \(status)", hint: object["hint"])
    }
}
