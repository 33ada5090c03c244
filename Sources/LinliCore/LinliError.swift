/// An error meant for a person: what went wrong, and what to do about it.
///
/// Every operating error in Linli is a `LinliError`. Its `code` is stable
/// and machine-readable (it appears in quarantine records, protocol
/// responses and `--json` output); its `message` says what is wrong in
/// words the person who sees it can act on, and `hint` what to do next.
public struct LinliError: Error, Sendable, Equatable, CustomStringConvertible {
    public let code: Code
    public let message: String
    public let hint: String?

    public init(_ code: Code, _ message: String, hint: String? = nil) {
        self.code = code
        self.message = message
        self.hint = hint
    }

    public var description: String {
        if let hint { return "\(message) (\(hint))" }
        return message
    }

    /// Stable reasons, shared by the store, the protocol and the clients.
    public enum Code: String, Sendable, Codable, CaseIterable {
        // Change set refusals (kept in quarantine).
        case malformed
        case overLimit = "over_limit"
        case badSignature = "bad_signature"
        case unknownKey = "unknown_key"
        case brokenChain = "broken_chain"
        case fork
        case deviceQuarantined = "device_quarantined"
        case clockAhead = "clock_ahead"
        case schemaViolation = "schema_violation"
        case unsupportedFormat = "unsupported_format"
        case revoked
        case outOfScope = "out_of_scope"
        case notPermitted = "not_permitted"
        // Sync requests.
        case badRequestSignature = "bad_request_signature"
        case staleRequest = "stale_request"
        case replayedRequest = "replayed_request"
        case unknownDevice = "unknown_device"
        /// An answer of the server failed its signature (PROTOCOL.md 1.4):
        /// damaged on the way, or not from an enrolled server. Nothing is
        /// applied from it; the request is sent again.
        case badAnswerSignature = "bad_answer_signature"
        // Local operations.
        case invalidInput = "invalid_input"
        case notFound = "not_found"
        case wrongPassphrase = "wrong_passphrase"
        case damagedFile = "damaged_file"
        case storage
        /// The server could not be reached or the connection broke; nothing
        /// was lost, and the next sync continues where this one stopped.
        case unreachable
        /// The server is shutting down or has no snapshot to offer; try
        /// again later or replay from zero.
        case unavailable
        case conflict
    }
}
