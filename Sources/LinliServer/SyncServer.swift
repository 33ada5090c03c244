import CompressNIO
import Foundation
import HTTPTypes
import Hummingbird
import LinliCore
import LinliProtocol
import LinliStore
import Logging
import Metrics
import NIOCore
import Prometheus

/// The HTTP face of ``SyncService``, on Hummingbird.
///
/// | method and path | body | answer |
/// | --- | --- | --- |
/// | `POST /v1/push` | `PushRequest` | `PushResponse` |
/// | `GET /v1/pull?after=N&limit=M` | none | `PullResponse` |
/// | `GET /v1/status` | none | JSON: refused change sets, conflicts |
/// | `GET /v1/snapshot` | none | a replica file of the device's scopes; the signed manifest in headers |
/// | `GET /v1/desk/queue?grid=&table=&kind=&field=&older=` | none | JSON: the review queue (staff only) |
/// | `GET /v1/desk/item/ID` | none | JSON: one item with its field's history (staff only) |
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
        router.add(middleware: RequestLog(logger: logger))
        router.get("/healthz") { _, _ in "ok" }
        if let metrics {
            router.get("/metrics") { request, _ -> Response in
                // The router also matches `/metrics/` and other spellings;
                // only the exact path the proxy's rule guards is served.
                guard request.uri.path == "/metrics" else {
                    return errorResponse(LinliError(.notFound, "there is nothing at \(request.uri.path.prefix(100)); the metrics are at /metrics"))
                }
                return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(bytes: metrics.emitToBuffer())))
            }
        }
        router.post("/v1/push") { request, _ -> Response in
            await respond(logger: logger) {
                let body = try await readBody(request)
                let access = try service.authenticate(method: "POST", path: request.uri.string, body: body, header: header(request))
                let answer = try await service.push(body, from: access)
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
                return try compressed(answer, contentType: protobuf, for: request)
            }
        }
        router.get("/v1/status") { request, _ -> Response in
            await respond(logger: logger) {
                let access = try service.authenticate(method: "GET", path: request.uri.string, body: Data(), header: header(request))
                let answer = try await offload { try service.status(for: access) }
                return try compressed(answer, contentType: "application/json", for: request)
            }
        }
        router.get("/v1/desk/queue") { request, _ -> Response in
            await respond(logger: logger) {
                let access = try service.authenticate(method: "GET", path: request.uri.string, body: Data(), header: header(request))
                var query: [String: String] = [:]
                for (key, value) in request.uri.queryParameters { query[String(key)] = String(value) }
                let filter = try ReviewFilter(query: query)
                let answer = try await offload { try service.deskQueue(filter: filter, for: access) }
                return try compressed(answer, contentType: "application/json", for: request)
            }
        }
        router.get("/v1/desk/item/:id") { request, context -> Response in
            await respond(logger: logger) {
                let access = try service.authenticate(method: "GET", path: request.uri.string, body: Data(), header: header(request))
                let id = context.parameters.get("id") ?? ""
                let answer = try await offload { try service.deskItem(id, for: access) }
                return try compressed(answer, contentType: "application/json", for: request)
            }
        }
        let files = FileIO()
        router.get("/v1/snapshot") { request, context -> Response in
            await respond(logger: logger) {
                let access = try service.authenticate(method: "GET", path: request.uri.string, body: Data(), header: header(request))
                let snapshot = try await offload { try service.snapshot(for: access) }
                let body = try await files.loadFile(path: snapshot.path, context: context)
                var headers: HTTPFields = [.contentType: "application/vnd.sqlite3", .contentLength: String(snapshot.bytes)]
                headers[HTTPField.Name(SnapshotWire.manifestHeader)!] = snapshot.manifest.base64EncodedString()
                headers[HTTPField.Name(SnapshotWire.signatureHeader)!] = snapshot.signature.base64EncodedString()
                return Response(status: .ok, headers: headers, body: body)
            }
        }
        return router
    }

    /// The answer, gzip-compressed when the client accepts gzip and the
    /// body is worth it (``Limits/compressBytesMin``).
    static func compressed(_ answer: Data, contentType: String, for request: Request) throws -> Response {
        let accepts = request.headers[.acceptEncoding].map { $0.lowercased().contains("gzip") } ?? false
        guard accepts, answer.count >= Limits.compressBytesMin else {
            return Response(status: .ok, headers: [.contentType: contentType], body: .init(byteBuffer: ByteBuffer(bytes: answer)))
        }
        var buffer = ByteBuffer(bytes: answer)
        let gzipped = try buffer.compress(with: .gzip(configuration: .init(compressionLevel: 3)))
        Counter(label: "linli_compressed_bytes_saved_total").increment(by: max(0, answer.count - gzipped.readableBytes))
        return Response(status: .ok, headers: [.contentType: contentType, .contentEncoding: "gzip", .vary: "Accept-Encoding"],
                        body: .init(byteBuffer: gzipped))
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
            logger.notice("refused", metadata: ["code": "\(error.code.rawValue)", "message": "\(error.message)"])
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
        case .storage, .unavailable: .serviceUnavailable
        case .notFound: .notFound
        case .conflict: .conflict
        default: .badRequest
        }
        var object: [String: String] = ["code": error.code.rawValue, "message": error.message]
        if let hint = error.hint { object["hint"] = hint }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// One structured log line per request: method, path, status, duration and
/// the device that signed it (the `Linli-Device` header; not yet checked
/// when the line is written for an unauthenticated failure).
struct RequestLog<Context: RequestContext>: RouterMiddleware {
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        var metadata: Logger.Metadata = ["method": "\(request.method.rawValue)", "path": "\(request.uri.path)"]
        if let device = HTTPField.Name(RequestSignature.Header.device).flatMap({ request.headers[$0] }) { metadata["device"] = "\(device)" }
        do {
            let response = try await next(request, context)
            metadata["status"] = "\(response.status.code)"
            metadata["ms"] = "\(milliseconds(since: started))"
            logger.info("request", metadata: metadata)
            return response
        } catch {
            metadata["status"] = "\((error as? any HTTPResponseError)?.status.code ?? 500)"
            metadata["ms"] = "\(milliseconds(since: started))"
            logger.info("request", metadata: metadata)
            throw error
        }
    }

    private func milliseconds(since start: ContinuousClock.Instant) -> String {
        let elapsed = ContinuousClock.now - start
        let total = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        return String(format: "%.1f", total)
    }
}
