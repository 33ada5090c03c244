import Foundation
import HTTPTypes
import Hummingbird
import LinliCore
import LinliProtocol
import LinliStore
import Logging
import NIOCore
import Prometheus

/// The HTTP face of ``SyncService``, on Hummingbird.
///
/// | method and path | body | answer |
/// | --- | --- | --- |
/// | `POST /v1/push` | `PushRequest` | `PushResponse` |
/// | `GET /v1/pull?after=N&limit=M` | none | `PullResponse` |
/// | `GET /v1/status` | none | JSON: refused change sets, conflicts |
/// | `GET /healthz` | none | `ok` |
/// | `GET /metrics` | none | Prometheus text: pushes, pulls, refusals by reason, commit latency |
///
/// Errors answer with JSON `{"code", "message", "hint"}` and a status that
/// fits the code (PROTOCOL.md).
public enum SyncServer {
    public static let protobuf = "application/x-protobuf"

    /// The routes. `metrics` is the registry the process bootstrapped
    /// swift-metrics with; `/metrics` shows it in Prometheus text format.
    public static func router(_ service: SyncService, logger: Logger, metrics: PrometheusCollectorRegistry? = nil) -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/healthz") { _, _ in "ok" }
        if let metrics {
            router.get("/metrics") { _, _ -> Response in
                Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(bytes: metrics.emitToBuffer())))
            }
        }
        router.post("/v1/push") { request, _ -> Response in
            await respond(logger: logger) {
                let body = try await readBody(request)
                let access = try service.authenticate(method: "POST", path: request.uri.string, body: body, header: header(request))
                let answer = try await offload { try service.push(body, from: access) }
                return Response(status: .ok, headers: [.contentType: protobuf], body: .init(byteBuffer: ByteBuffer(bytes: answer)))
            }
        }
        router.get("/v1/pull") { request, _ -> Response in
            await respond(logger: logger) {
                let access = try service.authenticate(method: "GET", path: request.uri.string, body: Data(), header: header(request))
                let parameters = request.uri.queryParameters
                guard let after = Int64(parameters["after"].map(String.init) ?? "0"), after >= 0 else {
                    throw LinliError(.invalidInput, "after must be a position: a whole number, 0 or more")
                }
                let limit = Int(parameters["limit"].map(String.init) ?? "") ?? Limits.pullChangeSetsMax
                let answer = try await offload { try service.pull(after: after, limit: limit, for: access) }
                return Response(status: .ok, headers: [.contentType: protobuf], body: .init(byteBuffer: ByteBuffer(bytes: answer)))
            }
        }
        router.get("/v1/status") { request, _ -> Response in
            await respond(logger: logger) {
                let access = try service.authenticate(method: "GET", path: request.uri.string, body: Data(), header: header(request))
                let answer = try await offload { try service.status(for: access) }
                return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: answer)))
            }
        }
        return router
    }

    static func header(_ request: Request) -> (String) -> String? {
        { name in HTTPField.Name(name).flatMap { request.headers[$0] } }
    }

    static func readBody(_ request: Request) async throws -> Data {
        var request = request
        do {
            let buffer = try await request.collectBody(upTo: Limits.requestBodyBytesMax)
            return Data(buffer.readableBytesView)
        } catch {
            throw LinliError(.overLimit, "the request body is larger than requestBodyBytesMax (\(Limits.requestBodyBytesMax) bytes)",
                             hint: "send fewer change sets per push")
        }
    }

    /// Turns a `LinliError` into its documented HTTP answer.
    static func respond(logger: Logger, _ body: () async throws -> Response) async -> Response {
        do {
            return try await body()
        } catch let error as LinliError {
            logger.info("refused", metadata: ["code": "\(error.code.rawValue)", "message": "\(error.message)"])
            return errorResponse(error)
        } catch {
            logger.error("failed", metadata: ["error": "\(error)"])
            return errorResponse(LinliError(.storage, "the server failed: \(error)", hint: "try again later"))
        }
    }

    static func errorResponse(_ error: LinliError) -> Response {
        let status: HTTPResponse.Status = switch error.code {
        case .badRequestSignature, .staleRequest, .replayedRequest, .unknownDevice: .unauthorized
        case .revoked, .notPermitted, .outOfScope: .forbidden
        case .overLimit: .contentTooLarge
        case .storage: .serviceUnavailable
        default: .badRequest
        }
        var object: [String: String] = ["code": error.code.rawValue, "message": error.message]
        if let hint = error.hint { object["hint"] = hint }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
