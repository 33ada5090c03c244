import Foundation

/// Times as a device shows them: in its time zone (`TZ`, else the
/// system's), with the offset, so 20:48 in Shanghai reads 20:48 +08:00.
public enum LocalTime {
    /// `2026-12-01 20:48:03 +08:00`, for people.
    public static func text(_ date: Date, zone: TimeZone = .current) -> String {
        formatter("yyyy-MM-dd HH:mm:ss xxx", zone).string(from: date)
    }

    /// `20:48:03`, for a time later today.
    public static func clock(_ date: Date, zone: TimeZone = .current) -> String {
        formatter("HH:mm:ss", zone).string(from: date)
    }

    private static func formatter(_ format: String, _ zone: TimeZone) -> DateFormatter {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = zone
        formatter.dateFormat = format
        return formatter
    }

    /// `2026-12-01T20:48:03+08:00`: ISO 8601 with the device's offset, for JSON.
    public static func iso(_ date: Date, zone: TimeZone = .current) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = zone
        return formatter.string(from: date)
    }
}
