// Feeds: a server's answer as the client receives it (PROTOCOL.md 1.4 and
// 2.1-2.6), as lines: what was asked (push, pull, trust, repair, heads or
// status), the HTTP status, Linli-Answer-Device, Linli-Answer-Key,
// Linli-Answer-Signature, then the answer's body bytes. A line of one NUL
// byte is a header that is not sent.
//
// Calls AnswerSignature(header:) and verify against the server key of
// Protocol/vectors/protocol/answer-pull.json, bound to the request vector
// asked, then (whether or not the signature held, so the decoders see
// every body) the client's decoding of that answer in ServerAnswer: the
// push results and the acknowledgement rule against alice's first two
// change sets, a pull page and its positions, a trust page, a repair page
// of alice's device, the heads, or the server's JSON error.
import Foundation
import FuzzSupport
import LinliCore
import LinliCrypto
import LinliProtocol

struct Asked {
    let request: AnswerSignature.Request
    init(_ vector: String) {
        let object = Repository.vector("protocol/\(vector)")
        let headers = object["headers"] as? [String: String] ?? [:]
        request = AnswerSignature.Request(
            method: object["method"] as? String ?? "", path: object["path"] as? String ?? "",
            device: DeviceID(hex: headers["Linli-Device"] ?? "")!, nonce: headers["Linli-Nonce"] ?? "",
            bodyHash: Blake2b256.hash(Repository.bytes("protocol/\(vector)")))
    }
}

let server = Repository.publicKey("protocol/answer-pull")
let serverDevice = DeviceID(hex: (Repository.vector("protocol/answer-pull")["headers"] as? [String: String])?["Linli-Answer-Device"] ?? "")!
let sent = [try! SignedChangeSet(envelope: Repository.bytes("accept-first")), try! SignedChangeSet(envelope: Repository.bytes("accept-second"))]
let aliceDevice = sent[0].header.device
let kinds = ["push", "pull", "trust", "repair", "heads", "status"]
let pullAsked = Asked("pull-request")
let statusAsked = Asked("status-request")
let asked = ["push": Asked("push-request"), "pull": pullAsked, "trust": pullAsked, "repair": pullAsked, "heads": statusAsked, "status": statusAsked]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let (lines, body) = FuzzInput(data, size).fields(5)
    let kindLine = lines[0] ?? ""
    let kind = kinds.contains(kindLine) ? kindLine : kinds[Int(kindLine.utf8.first ?? 0) % kinds.count]
    let status = lines[1].flatMap { Int($0) } ?? 200
    let headers = [AnswerSignature.Header.device, AnswerSignature.Header.key, AnswerSignature.Header.signature]

    if let signed = try? AnswerSignature(header: { name in headers.firstIndex(of: name).flatMap { lines[2 + $0] } }) {
        let request = asked[kind]!.request
        do {
            try signed.verify(status: status, request: request, body: body) { device, keyID in
                device == serverDevice && keyID == server.keyID ? server : nil
            }
        } catch let error as LinliError {
            precondition(error.code == .badAnswerSignature, "a signature that fails is bad_answer_signature, not \(error.code)")
        } catch {
            preconditionFailure("verify threw \(error)")
        }
    }

    switch kind {
    case "push":
        guard let answer = try? ServerAnswer.push(body, sent: sent) else { return 0 }
        precondition(answer.through <= sent.last!.header.seq && answer.accepted + answer.refused.count <= sent.count)
    case "pull":
        guard let (page, positions, cursor) = try? ServerAnswer.pull(body, after: 0) else { return 0 }
        precondition(positions.count == page.changeSets.count && positions.allSatisfy { $0 > 0 && $0 <= cursor })
        for entry in page.changeSets { _ = try? SignedChangeSet(envelope: entry.envelope) }
    case "trust":
        guard let page = try? ServerAnswer.trust(body) else { return 0 }
        _ = page.changeSets.compactMap { try? SignedChangeSet(envelope: $0.envelope) }.filter { $0.header.scope == .system }
    case "repair":
        guard let (page, newest) = try? ServerAnswer.repair(body, device: aliceDevice, after: 0) else { return 0 }
        precondition(page.changeSets.isEmpty ? newest == 0 : newest >= 1)
    case "heads":
        guard let heads = try? ServerAnswer.heads(body) else { return 0 }
        for head in heads.heads { _ = try? ServerAnswer.device(of: head) }
        _ = Int64(clamping: heads.logEnd)
    default:
        _ = ServerAnswer.failure(status: status, body: body)
        _ = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any]
    }
    return 0
}
