//! Every conversion between the generated proto types and the domain's,
//! in one place: `From` where every value has a counterpart, `TryFrom` (or
//! a function returning a `Status`) where the wire can carry a value the
//! domain refuses. Enums map variant to variant, never through strings;
//! the only text decoded here is what the report store keeps as text (a
//! match's kind and variant, a classification). The one value that becomes
//! text on the wire is a robust match's typed query variant, sent as its
//! stable name (`Match.query_variant`: `orig`, `dih:rot90`, `trim`, ...).

use sigil_core::hash::{decode_hex_into, encode_hex};
use sigil_core::robust::RobustLevel;
use sigil_core::{Dihedral, FileSignatures, HashKind};
use sigil_match::{MatchRequest, MatchedEntry, Outcome, Verdict};
use tonic::Status;

use crate::exec::lookup::LookupError;
use crate::exec::pool::PoolError;
use crate::proto;
use crate::untrusted;
use sigil_reports::{
    AuditRecord, Occurrence, ReportFilter, ReportRecord, ReportStatus, ReportUpdate, StoreError,
    StoredMatch,
};

// ------------------------------------------------------------------ enums

impl From<Verdict> for proto::Verdict {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Match => proto::Verdict::Match,
            Verdict::NoMatch => proto::Verdict::NoMatch,
            Verdict::LowQuality => proto::Verdict::LowQuality,
            Verdict::Error => proto::Verdict::Error,
        }
    }
}

impl From<HashKind> for proto::HashKind {
    fn from(k: HashKind) -> Self {
        match k {
            HashKind::Pdq => proto::HashKind::Pdq,
            HashKind::Md5 => proto::HashKind::Md5,
            HashKind::Sha1 => proto::HashKind::Sha1,
            HashKind::Sha256 => proto::HashKind::Sha256,
        }
    }
}

/// `Unspecified` has no domain counterpart: the error.
impl TryFrom<proto::HashKind> for HashKind {
    type Error = ();
    fn try_from(k: proto::HashKind) -> Result<Self, ()> {
        match k {
            proto::HashKind::Pdq => Ok(HashKind::Pdq),
            proto::HashKind::Md5 => Ok(HashKind::Md5),
            proto::HashKind::Sha1 => Ok(HashKind::Sha1),
            proto::HashKind::Sha256 => Ok(HashKind::Sha256),
            proto::HashKind::Unspecified => Err(()),
        }
    }
}

impl From<Dihedral> for proto::Dihedral {
    fn from(d: Dihedral) -> Self {
        match d {
            Dihedral::Orig => proto::Dihedral::Orig,
            Dihedral::Rot90 => proto::Dihedral::Rot90,
            Dihedral::Rot180 => proto::Dihedral::Rot180,
            Dihedral::Rot270 => proto::Dihedral::Rot270,
            Dihedral::FlipX => proto::Dihedral::Flipx,
            Dihedral::FlipY => proto::Dihedral::Flipy,
            Dihedral::FlipPlus1 => proto::Dihedral::Flipplus1,
            Dihedral::FlipMinus1 => proto::Dihedral::Flipminus1,
        }
    }
}

impl From<proto::RobustLevel> for RobustLevel {
    fn from(l: proto::RobustLevel) -> Self {
        match l {
            proto::RobustLevel::Off => RobustLevel::Off,
            proto::RobustLevel::Standard => RobustLevel::Standard,
            proto::RobustLevel::Full => RobustLevel::Full,
        }
    }
}

/// `MatchOptions.robust` as sent (an enum, or the bool it used to be).
fn robust_level(v: i32) -> Result<RobustLevel, Status> {
    proto::RobustLevel::try_from(v)
        .map(RobustLevel::from)
        .map_err(|_| {
            Status::invalid_argument(format!(
                "options: robust level {v} is not one of OFF (0), STANDARD (1), FULL (2)"
            ))
        })
}

/// A call's `MatchOptions` as the matching policy's request: unset fields
/// take the server's defaults, `max_matches` 0 means the server's maximum.
/// A robust level outside the enum is refused.
impl TryFrom<&proto::MatchOptions> for MatchRequest {
    type Error = Status;
    fn try_from(o: &proto::MatchOptions) -> Result<Self, Status> {
        Ok(MatchRequest {
            radius: o.radius,
            lists: o.lists.clone(),
            dihedral: o.dihedral,
            robust: o.robust.map(robust_level).transpose()?,
            max_matches: o.max_matches.map(|n| n as usize),
        })
    }
}

impl From<ReportStatus> for proto::ReportStatus {
    fn from(s: ReportStatus) -> Self {
        match s {
            ReportStatus::Pending => proto::ReportStatus::Pending,
            ReportStatus::Confirmed => proto::ReportStatus::Confirmed,
            ReportStatus::Dismissed => proto::ReportStatus::Dismissed,
            ReportStatus::Reported => proto::ReportStatus::Reported,
        }
    }
}

/// `Unspecified` is "no status": no filter, no change.
impl From<proto::ReportStatus> for Option<ReportStatus> {
    fn from(s: proto::ReportStatus) -> Self {
        match s {
            proto::ReportStatus::Unspecified => None,
            proto::ReportStatus::Pending => Some(ReportStatus::Pending),
            proto::ReportStatus::Confirmed => Some(ReportStatus::Confirmed),
            proto::ReportStatus::Dismissed => Some(ReportStatus::Dismissed),
            proto::ReportStatus::Reported => Some(ReportStatus::Reported),
        }
    }
}

fn report_status(v: i32) -> Result<Option<ReportStatus>, Status> {
    proto::ReportStatus::try_from(v)
        .map(Into::into)
        .map_err(|_| Status::invalid_argument(format!("unknown report status {v}")))
}

/// The classifications and the names the report store keeps them by.
const CLASSIFICATIONS: [(proto::Classification, &str); 4] = [
    (proto::Classification::A1, "A1"),
    (proto::Classification::A2, "A2"),
    (proto::Classification::B1, "B1"),
    (proto::Classification::B2, "B2"),
];

/// The stored name of a classification; `None` for `Unspecified`.
fn classification(v: i32) -> Result<Option<String>, Status> {
    let c = proto::Classification::try_from(v)
        .map_err(|_| Status::invalid_argument(format!("unknown classification {v}")))?;
    Ok(CLASSIFICATIONS
        .iter()
        .find(|(p, _)| *p == c)
        .map(|(_, name)| name.to_string()))
}

/// The classification a stored name stands for.
fn stored_classification(name: Option<&str>) -> proto::Classification {
    CLASSIFICATIONS
        .iter()
        .find(|(_, n)| Some(*n) == name)
        .map_or(proto::Classification::Unspecified, |(c, _)| *c)
}

// --------------------------------------------------------------- matches

/// A match, with the query variant that reached it (robust matching) by
/// its name.
impl From<&MatchedEntry> for proto::Match {
    fn from(m: &MatchedEntry) -> Self {
        proto::Match {
            id: m.id.clone(),
            list: m.list.clone(),
            category: m.category.clone(),
            distance: m.distance,
            kind: proto::HashKind::from(m.kind) as i32,
            variant: m
                .variant
                .map_or(proto::Dihedral::Unspecified, proto::Dihedral::from)
                as i32,
            note: m.note.clone().unwrap_or_default(),
            query_variant: m.query_variant.map(|v| v.name()).unwrap_or_default(),
        }
    }
}

/// A match as a report stub recorded it (its kind and variant by name).
impl From<&StoredMatch> for proto::Match {
    fn from(m: &StoredMatch) -> Self {
        let kind = m
            .kind
            .parse::<HashKind>()
            .map_or(proto::HashKind::Unspecified, proto::HashKind::from);
        let variant = Dihedral::ALL
            .into_iter()
            .find(|d| m.variant.as_deref() == Some(d.as_str()))
            .map_or(proto::Dihedral::Unspecified, proto::Dihedral::from);
        proto::Match {
            id: m.id.clone(),
            list: m.list.clone(),
            category: m.category.clone(),
            distance: m.distance,
            kind: kind as i32,
            variant: variant as i32,
            note: m.note.clone().unwrap_or_default(),
            query_variant: String::new(),
        }
    }
}

impl From<&FileSignatures> for proto::ComputedHashes {
    fn from(sigs: &FileSignatures) -> Self {
        let (pdq, quality, width, height) = match &sigs.image {
            Ok(img) => (img.pdq.to_hex(), img.quality, img.width, img.height),
            Err(_) => (String::new(), 0, 0, 0),
        };
        proto::ComputedHashes {
            pdq,
            quality,
            md5: sigs.exact.md5_hex(),
            // Empty (proto3's "unset") if SHA-1 was not computed; the
            // service always computes it.
            sha1: sigs.exact.sha1_hex().unwrap_or_default(),
            sha256: sigs.exact.sha256_hex(),
            width,
            height,
        }
    }
}

/// The result of one image: `outcome`'s verdict and matches, from the
/// generation that produced them.
pub(crate) fn match_result(
    request_id: String,
    outcome: Outcome,
    hashes: proto::ComputedHashes,
    report_id: String,
) -> proto::MatchResult {
    proto::MatchResult {
        request_id,
        verdict: proto::Verdict::from(outcome.verdict) as i32,
        matches: outcome.matches.iter().map(proto::Match::from).collect(),
        hashes: Some(hashes),
        report_id,
        error: outcome.error.unwrap_or_default(),
        index_generation: outcome.generation,
        index_identity: outcome.identity.to_string(),
    }
}

/// A parsed, validated `HashQuery`.
pub(crate) struct ParsedHash {
    pub kind: HashKind,
    pub bytes: Vec<u8>,
    /// The quality the caller computed, if sent (PDQ).
    pub quality: Option<u32>,
}

/// `hashes[i]` of a `MatchHashes` request, every error naming the item.
pub(crate) fn parse_query(i: usize, q: &proto::HashQuery) -> Result<ParsedHash, Status> {
    let name = || {
        if q.id.is_empty() {
            format!("hashes[{i}]")
        } else {
            format!("hashes[{i}] (id {:?})", untrusted::text(&q.id))
        }
    };
    let kind = proto::HashKind::try_from(q.kind)
        .map_err(|_| Status::invalid_argument(format!("{}: unknown hash kind {}", name(), q.kind)))?
        .try_into()
        .map_err(|()| {
            Status::invalid_argument(format!(
                "{}: kind is not set (expected PDQ, MD5, SHA1 or SHA256)",
                name()
            ))
        })?;
    let mut bytes = vec![0u8; HashKind::byte_len(kind)];
    decode_hex_into(q.hex.trim(), &mut bytes).map_err(|e| {
        Status::invalid_argument(format!("{}: not a valid {} hash: {e}", name(), kind))
    })?;
    Ok(ParsedHash {
        kind,
        bytes,
        quality: q.quality,
    })
}

impl ParsedHash {
    pub fn hex(&self) -> String {
        encode_hex(&self.bytes)
    }
}

// --------------------------------------------------------------- reports

impl From<AuditRecord> for proto::AuditEntry {
    fn from(a: AuditRecord) -> Self {
        proto::AuditEntry {
            at_unix_ms: a.at_ms,
            actor: a.actor,
            action: a.action,
            details_json: a.details_json,
        }
    }
}

impl From<Occurrence> for proto::Occurrence {
    fn from(o: Occurrence) -> Self {
        proto::Occurrence {
            at_unix_ms: o.at_ms,
            submitter_ref: o.submitter_ref,
            content_ref: o.content_ref,
            actor: o.actor,
        }
    }
}

impl From<ReportRecord> for proto::Report {
    fn from(r: ReportRecord) -> Self {
        proto::Report {
            status: proto::ReportStatus::from(r.status) as i32,
            classification: stored_classification(r.classification.as_deref()) as i32,
            matches: r.matches.iter().map(proto::Match::from).collect(),
            audit: r.audit.into_iter().map(proto::AuditEntry::from).collect(),
            id: r.id,
            incident_type: r.incident_type,
            detected_at_unix_ms: r.detected_at_ms,
            preservation_deadline_unix_ms: r.preservation_deadline_ms,
            reporting_org: r.reporting_org,
            reporting_email: r.reporting_email,
            submitter_ref: r.submitter_ref,
            content_ref: r.content_ref,
            file_name: r.file_name,
            md5: r.md5,
            sha1: r.sha1,
            sha256: r.sha256,
            pdq: r.pdq,
            quality: r.quality,
            viewed: r.viewed,
            annotations: r.annotations,
            reviewer: r.reviewer.unwrap_or_default(),
            updated_at_unix_ms: r.updated_at_ms,
            source: r.source,
            version: r.version,
            occurrences: r.occurrences.into_iter().map(Into::into).collect(),
            occurrence_count: r.occurrence_count,
            index_identity: r.index_identity.unwrap_or_default(),
        }
    }
}

impl TryFrom<proto::ListReportsRequest> for ReportFilter {
    type Error = Status;
    fn try_from(q: proto::ListReportsRequest) -> Result<Self, Status> {
        Ok(ReportFilter {
            status: report_status(q.status)?,
            detected_after_ms: (q.detected_after_unix_ms != 0).then_some(q.detected_after_unix_ms),
            detected_before_ms: (q.detected_before_unix_ms != 0)
                .then_some(q.detected_before_unix_ms),
            list: (!q.list.is_empty()).then_some(q.list),
            page_size: if q.page_size == 0 {
                50
            } else {
                q.page_size.min(1000) as usize
            },
            page_token: (!q.page_token.is_empty()).then_some(q.page_token),
            ..ReportFilter::default()
        })
    }
}

/// The update of `UpdateReportRequest` (its id is not part of it).
impl TryFrom<&mut proto::UpdateReportRequest> for ReportUpdate {
    type Error = Status;
    fn try_from(q: &mut proto::UpdateReportRequest) -> Result<Self, Status> {
        Ok(ReportUpdate {
            status: report_status(q.status)?,
            viewed: q.viewed,
            classification: classification(q.classification)?,
            add_annotations: std::mem::take(&mut q.add_annotations),
            expected_version: q.expected_version,
        })
    }
}

// ---------------------------------------------------------------- errors

/// A report store error as the gRPC status a caller acts on (a function:
/// neither type is this crate's).
pub(crate) fn store_status(e: StoreError) -> Status {
    {
        match e {
            // The client chose the id and the token: shown escaped and bounded.
            StoreError::NotFound(id) => {
                Status::not_found(format!("report {:?} not found", untrusted::text(&id)))
            }
            StoreError::Rejected { id, reason } => Status::failed_precondition(format!(
                "report {:?}: {}",
                untrusted::text(&id),
                untrusted::text(&reason)
            )),
            // gRPC's code for a failed optimistic-concurrency check.
            StoreError::Conflict { .. } => Status::aborted(e.to_string()),
            StoreError::BadPageToken(token) => Status::invalid_argument(format!(
                "invalid page token {:?}",
                untrusted::text(&token)
            )),
            StoreError::Open { .. }
            | StoreError::Sql(_)
            | StoreError::Unavailable(_)
            | StoreError::Backend(_) => {
                tracing::error!(error = %e, "report store failed");
                Status::unavailable(e.to_string())
            }
        }
    }
}

impl From<PoolError> for Status {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Full(_) | PoolError::FullBytes(_) => {
                Status::resource_exhausted(e.to_string())
            }
            PoolError::DeadlineExpired => Status::deadline_exceeded(e.to_string()),
            PoolError::ShutDown => Status::unavailable(e.to_string()),
            PoolError::WorkerPanic(_) => Status::internal(e.to_string()),
        }
    }
}

impl From<LookupError> for Status {
    fn from(e: LookupError) -> Self {
        match e {
            LookupError::Full(_) => Status::resource_exhausted(e.to_string()),
            LookupError::DeadlineExpired => {
                Status::deadline_exceeded(format!("deadline exceeded while matching hashes ({e})"))
            }
            LookupError::ShutDown => Status::unavailable(e.to_string()),
            LookupError::WorkerPanic(_) => Status::internal(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_hashes_are_named() {
        let q = |kind: proto::HashKind, hex: &str| proto::HashQuery {
            id: "q1".into(),
            kind: kind as i32,
            hex: hex.into(),
            ..Default::default()
        };
        let e = parse_query(3, &q(proto::HashKind::Sha1, &"a".repeat(32)))
            .err()
            .unwrap();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(
            e.message().contains("hashes[3]") && e.message().contains("40"),
            "{}",
            e.message()
        );
        let e = parse_query(0, &q(proto::HashKind::Md5, &"z".repeat(32)))
            .err()
            .unwrap();
        assert!(e.message().contains("invalid hex"), "{}", e.message());
        let e = parse_query(0, &q(proto::HashKind::Unspecified, "00"))
            .err()
            .unwrap();
        assert!(e.message().contains("kind is not set"));
        let upper = parse_query(0, &q(proto::HashKind::Md5, &"AB".repeat(16)))
            .ok()
            .unwrap();
        assert_eq!(encode_hex(&upper.bytes), "ab".repeat(16));
    }

    /// `MatchOptions` become the policy's request field by field; a robust
    /// level outside the enum is refused, naming it.
    #[test]
    fn match_options_become_a_match_request() {
        let o = proto::MatchOptions {
            radius: Some(12),
            lists: vec!["ncmec".into()],
            dihedral: Some(true),
            max_matches: Some(3),
            robust: Some(proto::RobustLevel::Standard as i32),
            check_only: None,
        };
        assert_eq!(
            MatchRequest::try_from(&o).unwrap(),
            MatchRequest {
                radius: Some(12),
                lists: vec!["ncmec".into()],
                dihedral: Some(true),
                robust: Some(RobustLevel::Standard),
                max_matches: Some(3),
            }
        );
        assert_eq!(
            MatchRequest::try_from(&proto::MatchOptions::default()).unwrap(),
            MatchRequest::default()
        );
        let bad = proto::MatchOptions {
            robust: Some(9),
            ..Default::default()
        };
        let e = MatchRequest::try_from(&bad).unwrap_err();
        assert!(e.message().contains("robust level 9"), "{}", e.message());
    }

    /// The typed query variant crosses the wire as its stable name.
    #[test]
    fn query_variant_is_sent_by_name() {
        use sigil_core::robust::QueryVariant;
        let m = MatchedEntry {
            id: "e".into(),
            list: "l".into(),
            category: "A1".into(),
            note: None,
            kind: HashKind::Pdq,
            distance: 7,
            variant: Some(Dihedral::Rot90),
            query_variant: Some(QueryVariant::TrimmedDihedral(Dihedral::Rot90)),
        };
        let p = proto::Match::from(&m);
        assert_eq!(p.query_variant, "trim+dih:rot90");
        assert_eq!(p.variant, proto::Dihedral::Rot90 as i32);
        let plain = proto::Match::from(&MatchedEntry {
            query_variant: None,
            ..m
        });
        assert_eq!(plain.query_variant, "");
    }

    /// A stored match reads back as the match it was stored from (but for
    /// the query variant, which a stub does not keep).
    #[test]
    fn stored_matches_convert_like_matches() {
        for (kind, variant) in [
            (HashKind::Pdq, Some(Dihedral::FlipMinus1)),
            (HashKind::Sha256, None),
        ] {
            let m = MatchedEntry {
                id: "e".into(),
                list: "l".into(),
                category: "A1".into(),
                distance: 4,
                kind,
                variant,
                note: Some("n".into()),
                query_variant: None,
            };
            assert_eq!(
                proto::Match::from(&StoredMatch::from(&m)),
                proto::Match::from(&m)
            );
        }
        for (c, _) in CLASSIFICATIONS {
            let name = classification(c as i32).unwrap();
            assert_eq!(stored_classification(name.as_deref()), c);
        }
    }
}
