/// Every limit Linli enforces, in one place, each named with its unit last.
///
/// A limit exists so that one bad device, request or file cannot exhaust a
/// replica or the server. An exceeded limit is never silent: it becomes a
/// ``LinliError`` that names the limit and its value, and whatever was
/// refused is kept for review.
public enum Limits {
    // MARK: Change sets

    /// Largest signed change set envelope, body and signature together.
    public static let changeSetBytesMax = 1 << 20 // 1 MiB
    /// Most field writes in one change set.
    public static let writesPerChangeSetMax = 5_000
    /// Most rows touched by one change set.
    public static let rowsPerChangeSetMax = 1_000
    /// Most dots one field write may replace (concurrent survivors it saw).
    public static let replacedDotsPerWriteMax = 64
    /// Largest single value (text or bytes), in bytes.
    public static let valueBytesMax = 64 << 10 // 64 KiB
    /// Longest table or field name, in bytes.
    public static let nameBytesMax = 64
    /// Longest user name carried in a change set header, in bytes.
    public static let userBytesMax = 128
    /// Longest scope string, in bytes.
    public static let scopeBytesMax = 128

    /// Largest sequence number a change set may carry, or name in a
    /// replaced dot: sequence numbers are stored as signed 64-bit integers.
    public static let sequenceNumberMax: UInt64 = UInt64(Int64.max)

    // MARK: Clocks

    /// How far ahead of the receiver's own clock a change set's time may be
    /// before it is refused, in milliseconds. Field devices have drifting
    /// clocks; ten minutes tolerates a badly set phone without letting one
    /// device's wrong clock win every later conflict.
    public static let clockDriftMillisecondsMax: UInt64 = 10 * 60 * 1000
    /// Largest logical counter of the hybrid logical clock within one
    /// millisecond; the counter has 16 bits.
    public static let clockCounterMax: UInt64 = 0xFFFF

    // MARK: Sync requests

    /// How far a signed request's time may be from the server's, either
    /// way, in milliseconds.
    public static let requestClockSkewMillisecondsMax: UInt64 = 5 * 60 * 1000
    /// Most nonces a server remembers at once; with the skew window this
    /// bounds how many requests per window it can tell apart from replays.
    public static let requestNoncesMax = 1_000_000

    /// Largest request body the server reads, in bytes (16 MiB).
    public static let requestBodyBytesMax = 16 << 20
    /// Longest a request body may take to arrive, in seconds, once its
    /// headers have passed the server's first check.
    public static let requestBodyReadSecondsMax = 120
    /// A connection with nothing to read for this long is closed, a request
    /// half sent included (seconds).
    public static let connectionIdleSecondsMax = 30
    /// Largest request header field the server reads, name and value (8 KiB).
    public static let requestHeaderFieldBytesMax = 8 << 10
    /// Largest request header block the server reads (32 KiB).
    public static let requestHeadersBytesMax = 32 << 10
    /// Most header fields in one request.
    public static let requestHeaderFieldsMax = 64
    /// Most change sets in one push.
    public static let pushChangeSetsMax = 1_000
    /// Most change sets in one pulled page.
    public static let pullChangeSetsMax = 1_000
    /// Largest pulled page, in bytes of envelopes (4 MiB); a page always
    /// holds at least one change set.
    public static let pullPageBytesMax = 4 << 20
    /// Largest response body a client reads into memory, after
    /// decompression (a pull page at its limit plus one oversized change
    /// set fits with room to spare).
    public static let responseBytesMax = 32 << 20
    /// Most change sets the server commits in one group commit, gathered
    /// from the pushes that arrived while the previous commit ran.
    public static let groupCommitChangeSetsMax = 4_000
    /// Largest bootstrap snapshot a client downloads, in bytes (4 GiB).
    public static let snapshotBytesMax: Int64 = 4 << 30
    /// Largest enrolment or rotation request an administrator reads, file
    /// or QR line (64 KiB).
    public static let enrolmentRequestBytesMax = 64 << 10
    /// Oldest snapshot a new device adopts, by its manifest's `taken_at_ms`
    /// (7 days): the server makes one on demand, so an older one is a
    /// replayed download.
    public static let snapshotAdoptAgeSecondsMax = 7 * 24 * 3_600
    /// How long the server reuses a snapshot it made for the same scopes
    /// before making a fresh one, in seconds. A device pulls what is newer.
    public static let snapshotAgeSecondsMax = 3_600
    /// Smallest response the server compresses, in bytes; smaller ones are
    /// not worth the CPU.
    public static let compressBytesMin = 1_024
    /// Largest error answer a client reads, in bytes: an error is a short
    /// JSON object; anything longer is not the server's.
    public static let errorAnswerBytesMax = 64 << 10
    /// Most a gzip answer may grow when a client undoes it (decompressed
    /// bytes per compressed byte). Pages and snapshots compress 3 to 10
    /// times; a compression bomb, thousands.
    public static let gzipExpansionRatioMax = 100
    /// Most pages a device pulls, per device, to repair a difference its
    /// heads comparison found in one sync (PROTOCOL.md 2.6); the next sync
    /// goes on from there.
    public static let repairPagesPerDeviceMax = 50
    /// Most devices whose differences one sync repairs; the next sync
    /// goes on with the rest.
    public static let repairDevicesPerSyncMax = 2_000
    /// Most pages of trust records a device fetches to learn the server's
    /// key (PROTOCOL.md 2.7): 1,000 a page, a city's certificates fit.
    public static let trustPagesMax = 100

    // MARK: Schema

    /// Most tables in one schema pack.
    public static let tablesPerSchemaMax = 256
    /// Most fields in one table.
    public static let fieldsPerTableMax = 128

    // MARK: Applying

    /// Most change sets applied in one store transaction (a pull page).
    public static let changeSetsPerBatchMax = 2_000
    /// Most row states one merge transaction keeps in memory before writing
    /// them back.
    public static let cachedRowsMax = 50_000
    /// Most change sets of one device held while waiting for a missing
    /// predecessor (a gap in its chain).
    public static let heldChangeSetsPerDeviceMax = 10_000
    /// Most bytes of one device's change sets held for a missing
    /// predecessor (64 MiB). Past it, more are refused `over_limit` and
    /// stay on the device, which sends them again once the gap fills.
    public static let heldBytesPerDeviceMax = 64 << 20
    /// Most bytes of refused change sets kept in quarantine for one device
    /// (64 MiB). Past it, a refusal is still recorded with its reason and
    /// hash, without the envelope: a device keeps its own change sets, so
    /// nothing it entered is lost, and a hostile device cannot fill the
    /// server.
    public static let quarantineBytesPerDeviceMax = 64 << 20
    /// Most bytes kept of an envelope that cannot be decoded (64 KiB): the
    /// start is evidence enough, the rest is no change set anyone entered.
    public static let undecodableEnvelopeBytesKeptMax = 64 << 10
    /// Most refusals a device's status answer lists, newest first.
    public static let statusRefusalsMax = 200

    // MARK: Storage

    /// SQLite page cache per connection, in KiB (64 MiB).
    public static let sqliteCacheKibibytesMax = 64 * 1024
    /// SQLite memory-mapped I/O window, in bytes (256 MiB).
    public static let sqliteMmapBytesMax = 256 << 20

    /// Connections one server process keeps open to PostgreSQL at most. A
    /// city runs several processes on one database: their pools together
    /// stay below the database's `max_connections`.
    public static let postgresConnectionsMax = 16
    /// Longest a server process waits for a PostgreSQL connection to open,
    /// in seconds.
    public static let postgresConnectSecondsMax = 10
    /// Most log rows one statement inserts into PostgreSQL; a larger append
    /// is sent in several statements of one transaction.
    public static let postgresStatementRowsMax = 500
    /// Most envelope bytes one statement carries to PostgreSQL (32 MiB), so
    /// no message comes near PostgreSQL's limit of 1 GiB; a statement
    /// always carries at least one change set.
    public static let postgresStatementBytesMax = 32 << 20

    /// Longest text `find` searches for, in characters.
    public static let findTextCharactersMax = 200

    /// Longest PIN or passphrase read from a terminal, in bytes.
    public static let secretBytesMax = 1_024

    /// Longest a device key stays unlocked (`linli unlock`), in seconds:
    /// a kiosk's day, 16 hours.
    public static let unlockSecondsMax = 16 * 3_600
    /// Largest unlocked-key file read, in bytes.
    public static let unlockedKeyFileBytesMax = 16 << 10

    /// Longest a kiosk shows a receipt before clearing the screen for the
    /// next resident, in seconds.
    public static let kioskReceiptSecondsMax = 60

    /// Most records a reference typed as text (an address, a name) offers
    /// to choose from.
    public static let referenceCandidatesMax = 9

    // MARK: Operations

    /// What a 503 answer's `Retry-After` asks a device to wait, in seconds:
    /// long enough for a restarted process or a database to come back,
    /// short enough that a kiosk's night window is not wasted.
    public static let retryAfterSeconds = 5
    /// The longest `Retry-After` a device honours, in seconds; a larger one
    /// (a proxy's, a damaged header) is taken as this.
    public static let retryAfterSecondsMax = 60
    /// Longest the readiness check (`GET /readyz`) waits for the store, in
    /// seconds, before it says the process is not ready.
    public static let readinessSecondsMax = 2
    /// Most bytes of a `/proc` file the process metrics read (1 MiB: the
    /// `intr` line of `/proc/stat` grows with the machine's interrupts).
    public static let procFileBytesMax = 1 << 20

    /// Longest a backup waits for a moment of the store's lock, in seconds.
    public static let backupBusySecondsMax = 30
    /// Most problems of SQLite's integrity check a refused backup names.
    public static let backupProblemsShownMax = 10

    // MARK: Relations between limits, checked by the tests.

    // MARK: The conflict desk (the /desk web page)

    /// The server checks the review queue after merges at most this often
    /// (``ReviewWatch``); staff reading the queue always see it recomputed.
    public static let reviewCheckIntervalMillisecondsMin = 1_000

    /// A desk session ends after this long without a request.
    public static let deskSessionIdleSecondsMax: UInt64 = 30 * 60
    /// And after this long in any case: a working day, then log in again.
    public static let deskSessionLifetimeSecondsMax: UInt64 = 12 * 3600
    /// Sessions held at once; past it, the least recently used one ends.
    public static let deskSessionsMax = 10_000
    /// Failed logins of one user name from one client address that cost
    /// nothing; after them each further try of that name from that address
    /// waits, 1 s doubling per failure up to the maximum.
    public static let deskLoginFailuresFree = 3
    public static let deskLoginDelaySecondsMax: UInt64 = 300
    /// A user name's failures are forgotten after this long without one.
    public static let deskLoginFailuresKeptSecondsMax: UInt64 = 3600
    /// User names (each with a client address) whose failures are remembered at once.
    public static let deskLoginNamesMax = 10_000
    /// Password checks running at once (each Argon2id check takes 64 MiB).
    public static let deskLoginsInFlightMax = 4
    /// A desk form's body.
    public static let deskFormBytesMax = 1 << 20
    /// A resolution's note.
    public static let deskNoteBytesMax = 4_000
    /// Rows the queue page shows; the count says how many there are.
    public static let deskQueueRowsMax = 500
    /// Conflicts one bulk resolution takes.
    public static let deskBulkItemsMax = 2_000
    /// Resolutions per signed change set (each is a write and an audit row,
    /// well inside ``rowsPerChangeSetMax``).
    public static let deskResolutionsPerChangeSetMax = 200

    /// The relations the limits above must keep; tests assert each one.
    public static var relationsHold: Bool {
        valueBytesMax < changeSetBytesMax
            && rowsPerChangeSetMax <= writesPerChangeSetMax
            && nameBytesMax < valueBytesMax
            && changeSetsPerBatchMax > 0
            && pushChangeSetsMax <= changeSetsPerBatchMax
            && pullChangeSetsMax <= changeSetsPerBatchMax
            && changeSetBytesMax <= pullPageBytesMax
            && pushChangeSetsMax * 64 <= requestBodyBytesMax
            && pullPageBytesMax + changeSetBytesMax < responseBytesMax
            && groupCommitChangeSetsMax >= pushChangeSetsMax
            && deskResolutionsPerChangeSetMax * 2 <= rowsPerChangeSetMax
            && requestNoncesPerDeviceMax <= requestNoncesMax
            && deskLoginsInFlightPerAddressMax <= deskLoginsInFlightMax
            && changeSetBytesMax <= postgresStatementBytesMax
            && postgresStatementRowsMax > 0
    }

    // MARK: Hostile input: what one device or one client address may take

    /// Most nonces of one device the server remembers at once (a nonce is
    /// kept until its request's time is outside the skew window). A device
    /// past it is refused `over_limit` until its old nonces expire; other
    /// devices are not affected. ``requestNoncesMax`` still bounds them all.
    public static let requestNoncesPerDeviceMax = 10_000
    /// Largest age the review queue can be filtered by (`older` of
    /// `/v1/desk/queue`, `older_hours` of `/desk/queue`), in seconds: ten years.
    public static let deskOlderSecondsMax: UInt64 = 10 * 365 * 24 * 3600
    /// Failed logins from one client address, over all user names, that
    /// cost nothing; after them the address's tries wait as a name's do.
    public static let deskLoginFailuresPerAddressFree = 10
    /// Password checks of one client address running at once (of the
    /// ``deskLoginsInFlightMax`` of the whole server).
    public static let deskLoginsInFlightPerAddressMax = 2
    /// Client addresses whose failures are remembered at once.
    public static let deskLoginAddressesMax = 10_000
    /// Expired desk sessions, which hold unsealed staff keys, are ended at
    /// least this often, in seconds, with or without requests.
    public static let deskSessionSweepSecondsMax: UInt64 = 60
}
