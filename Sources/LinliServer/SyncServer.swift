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
/// | `GET /v1/pull?device=D&after_seq=S&limit=M` | none | `PullResponse`: one device's change sets after seq S (repair) |
/// | `GET /v1/heads` | none | `HeadsResponse`: the newest change set of every device the asker may see |
/// | `GET /v1/trust` | none | `PullResponse`: every trust record (the authority's change sets) |
/// | `GET /v1/status` | none | JSON: refused change sets, conflicts |
/// | `GET /v1/snapshot` | none | a replica file of the device's scopes; the signed manifest in headers |
/// | `GET /v1/desk/queue?grid=&table=&kind=&field=&older=` | none | JSON: the review queue (staff only) |
/// | `GET /v1/desk/item/ID` | none | JSON: one item with its field's history (staff only) |
/// | `GET /healthz` | none | `ok`: the process runs (liveness) |
/// | `GET /readyz` | none | `ready`, or 503 while its store does not answer (readiness) |
/// | `GET /metrics` | none | Prometheus text: pushes, pulls, refusals by reason, commit and store latency, the process |
///
/// Errors answer with JSON `{"code", "message", "hint"}` and a status that
/// fits the code (PROTOCOL.md); a 503 says in `Retry-After` how many
/// seconds to wait (``Limits/retryAfterSeconds``). Every answer to a request whose signature
/// headers can be read is signed by the server (PROTOCOL.md 1.4).
public enum SyncServer {
    public static let protobuf = "application/x-protobuf"

    /// The routes. `metrics` is the registry the process bootstrapped
    /// swift-metrics with; `/metrics` shows it in Prometheus text format.
    /// `bodyReadSeconds` bounds how long a request body may take to arrive
    /// (at most ``Limits/requestBodyReadSecondsMax``).
    public static func router(_ service: SyncService, logger: Logger, metrics: PrometheusCollectorRegistry? = nil,
                              bodyReadSeconds: Int = Limits.requestBodyReadSecondsMax) -> Router<BasicRequestContext> {
        let bodyReadSeconds = min(max(bodyReadSeconds, 1), Limits.requestBodyReadSecondsMax)
        let router = Router()
        router.add(middleware: RequestLog(logger: logger))
        router.get("/healthz") { _, _ in "ok" }
        router.get("/readyz") { _, _ -> Response in
            await readiness(service.storage)
        }
        if let metrics {
            let process = ProcessMetrics(registry: metrics)
            router.get("/metrics") { request, _ -> Response in
                // The router also matches `/metrics/` and other spellings;
                // only the exact path the proxy's rule guards is served.
                guard request.uri.path == "/metrics" else {
                    return errorResponse(LinliError(.notFound, "there is nothing at \(request.uri.path.prefix(100)); the metrics are at /metrics"))
                }
                process.update()
                return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(bytes: metrics.emitToBuffer())))
            }
        }
        for (method, path) in SyncService.routes {
            let handler: @Sendable (Request, BasicRequestContext) async throws -> Response = { request, _ in
                await answer(service, request, logger: logger, bodyReadSeconds: bodyReadSeconds)
            }
            if method == "POST" { router.post(RouterPath(path), use: handler) } else { router.get(RouterPath(path), use: handler) }
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

    /// Hands one request to ``SyncService/handle(method:target:header:body:)``
    /// (reading the body, bounded) and sends its signed answer, compressed
    /// when worth it.
    static func answer(_ service: SyncService, _ request: Request, logger: Logger,
                       bodyReadSeconds: Int = Limits.requestBodyReadSecondsMax) async -> Response {
        var body = Data()
        var early: LinliError?
        if request.method == .post {
            // Nothing of the body is read for a request that cannot be from
            // an enrolled device (PROTOCOL.md 1.3).
            let announced = request.headers[.contentLength].flatMap { Int($0) }
            do { try service.precheck(header: header(request), contentLength: announced) } catch let error as LinliError { early = error } catch {
                early = LinliError(.storage, "the server could not check the request", hint: "nothing is lost; try again later")
            }
            if early == nil {
                do { body = try await readBody(request, seconds: bodyReadSeconds) } catch let error as LinliError { early = error } catch {
                    early = LinliError(.malformed, "the request body could not be read", hint: "nothing is lost; the device sends it again")
                }
            }
        }
        let answer = await service.handle(method: request.method.rawValue, target: request.uri.string, header: header(request), body: body,
                                          refusedEarly: early)
        if let refusal = answer.refusal {
            logger.notice("refused", metadata: ["code": "\(refusal.code.rawValue)", "message": "\(refusal.message)"])
        }
        if let failure = answer.failure { logger.error("failed", metadata: ["error": "\(failure)"]) }
        var headers: HTTPFields = [:]
        for (name, value) in answer.headers { headers[HTTPField.Name(name)!] = value }
        let status = HTTPResponse.Status(code: answer.status)
        do {
            return try compressed(answer.body, status: status, contentType: answer.contentType, headers: headers, for: request)
        } catch {
            headers[.contentType] = answer.contentType
            return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: answer.body)))
        }
    }

    /// The answer, gzip-compressed when the client accepts gzip and the
    /// body is worth it (``Limits/compressBytesMin``). The answer's
    /// signature covers the bytes before compression.
    static func compressed(_ answer: Data, status: HTTPResponse.Status = .ok, contentType: String, headers extra: HTTPFields = [:],
                           for request: Request) throws -> Response {
        var headers = extra
        headers[.contentType] = contentType
        let accepts = request.headers[.acceptEncoding].map { $0.lowercased().contains("gzip") } ?? false
        guard accepts, answer.count >= Limits.compressBytesMin else {
            return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: answer)))
        }
        var buffer = ByteBuffer(bytes: answer)
        let gzipped = try buffer.compress(with: .gzip(configuration: .init(compressionLevel: 3)))
        Counter(label: "linli_compressed_bytes_saved_total").increment(by: max(0, answer.count - gzipped.readableBytes))
        headers[.contentEncoding] = "gzip"
        headers[.vary] = "Accept-Encoding"
        return Response(status: status, headers: headers, body: .init(byteBuffer: gzipped))
    }

    static func header(_ request: Request) -> (String) -> String? {
        { name in HTTPField.Name(name).flatMap { request.headers[$0] } }
    }

    /// Reads a request body, at most ``Limits/requestBodyBytesMax`` bytes and
    /// for at most `seconds` (``Limits/requestBodyReadSecondsMax``): a client
    /// that trickles its body is cut off.
    static func readBody(_ request: Request, seconds: Int = Limits.requestBodyReadSecondsMax) async throws -> Data {
        let request = request
        do {
            return try await withThrowingTaskGroup(of: Data?.self) { group in
                group.addTask {
                    var request = request
                    let buffer = try await request.collectBody(upTo: Limits.requestBodyBytesMax)
                    return Data(buffer.readableBytesView)
                }
                group.addTask {
                    try await Task.sleep(for: .seconds(seconds))
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let body = first else {
                    throw LinliError(.malformed, "the request body did not arrive within \(seconds) s (body_read_seconds; requestBodyReadSecondsMax is \(Limits.requestBodyReadSecondsMax))",
                                     hint: "nothing is lost; the device sends it again on a better connection")
                }
                return body
            }
        } catch let error as LinliError {
            throw error
        } catch is NIOTooManyBytesError {
            throw LinliError(.overLimit, "the request body is larger than requestBodyBytesMax (\(Limits.requestBodyBytesMax) bytes)",
                             hint: "send fewer change sets per push")
        } catch {
            throw LinliError(.malformed, "the request body was cut off before its end (\(error))",
                             hint: "nothing is lost; the device sends it again")
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
        let (status, data) = errorAnswer(error)
        var headers: HTTPFields = [.contentType: "application/json"]
        if status == .serviceUnavailable { headers[.retryAfter] = String(Limits.retryAfterSeconds) }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// `GET /readyz`: whether the store answers a read (its log's end)
    /// within ``Limits/readinessSecondsMax``. A balancer sends no request to
    /// a process that is not ready; `/healthz` only says it runs, so a
    /// supervisor does not restart a process that waits for its database.
    static func readiness(_ storage: any SyncStorage) async -> Response {
        let seconds = Limits.readinessSecondsMax
        let failure: LinliError
        switch await offload(seconds: seconds, { try storage.logEnd() }) {
        case .success:
            return Response(status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: "ready\n")))
        case .failure(let error):
            let reason = (error as? LinliError)?.message ?? "\(error)"
            failure = LinliError(.unavailable, "not ready: the store failed a read: \(reason)",
                                 hint: "the server answers again by itself once its store does")
        case nil:
            failure = LinliError(.unavailable, "not ready: the store did not answer a read within \(seconds) s (readinessSecondsMax)",
                                 hint: "the server answers again by itself once its store does")
        }
        Counter(label: "linli_readiness_failures_total").increment()
        return errorResponse(failure)
    }

    /// The status and JSON body of a `LinliError`.
    static func errorAnswer(_ error: LinliError) -> (HTTPResponse.Status, Data) {
        let (status, data) = SyncService.errorAnswer(error)
        return (HTTPResponse.Status(code: status), data)
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
