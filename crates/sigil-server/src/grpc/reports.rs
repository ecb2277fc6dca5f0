//! `sigil.v1.Reports`: reviewers read, list, update and export the report
//! stubs the matcher stored.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert::store_status;
use super::{caller, key_name, timed};
use crate::proto;
use crate::server::AppState;
use sigil_reports::time::now_ms;
use sigil_reports::{ReportFilter, ReportStore, ReportUpdate, StoreError};

/// `sigil.v1.Reports`.
#[derive(Clone)]
pub(crate) struct ReportsService {
    pub state: Arc<AppState>,
}

impl ReportsService {
    /// Runs `f` on the report store (off the async threads, bounded).
    async fn store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn ReportStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, Status> {
        self.state
            .store
            .run(f)
            .await
            .map_err(|e| Status::internal(format!("report store task failed: {e}")))?
            .map_err(store_status)
    }
}

fn require_id(id: &str) -> Result<(), Status> {
    if id.is_empty() {
        Err(Status::invalid_argument("report id is empty"))
    } else {
        Ok(())
    }
}

#[tonic::async_trait]
impl proto::reports_server::Reports for ReportsService {
    async fn get_report(
        &self,
        request: Request<proto::GetReportRequest>,
    ) -> Result<Response<proto::Report>, Status> {
        timed(
            &self.state.metrics,
            "GetReport",
            key_name(&request),
            async {
                caller(&request)?;
                let id = request.into_inner().id;
                require_id(&id)?;
                let r = self.store(move |s| s.get(&id)).await?;
                Ok(Response::new(r.into()))
            },
        )
        .await
    }

    async fn list_reports(
        &self,
        request: Request<proto::ListReportsRequest>,
    ) -> Result<Response<proto::ListReportsResponse>, Status> {
        timed(
            &self.state.metrics,
            "ListReports",
            key_name(&request),
            async {
                caller(&request)?;
                let filter = ReportFilter::try_from(request.into_inner())?;
                let page = self.store(move |s| s.list(&filter)).await?;
                Ok(Response::new(proto::ListReportsResponse {
                    reports: page.reports.into_iter().map(Into::into).collect(),
                    next_page_token: page.next_page_token.unwrap_or_default(),
                }))
            },
        )
        .await
    }

    async fn update_report(
        &self,
        request: Request<proto::UpdateReportRequest>,
    ) -> Result<Response<proto::Report>, Status> {
        timed(&self.state.metrics, "UpdateReport", key_name(&request), async {
            let who = caller(&request)?;
            let mut q = request.into_inner();
            require_id(&q.id)?;
            let update = ReportUpdate::try_from(&mut q)?;
            if update.is_empty() {
                return Err(Status::invalid_argument(
                    "update changes nothing: set status, viewed, classification or add_annotations",
                ));
            }
            let actor = who.name().to_string();
            let id = q.id;
            let r = self
                .store(move |s| s.update(&id, &update, &actor, now_ms()))
                .await?;
            tracing::info!(report_id = %r.id, reviewer = who.name(), status = r.status.as_str(), "report updated");
            Ok(Response::new(r.into()))
        })
        .await
    }

    async fn export_report(
        &self,
        request: Request<proto::ExportReportRequest>,
    ) -> Result<Response<proto::ExportReportResponse>, Status> {
        timed(
            &self.state.metrics,
            "ExportReport",
            key_name(&request),
            async {
                caller(&request)?;
                let id = request.into_inner().id;
                require_id(&id)?;
                let r = self.store(move |s| s.get(&id)).await?;
                let json =
                    serde_json::to_string_pretty(&sigil_reports::export::cybertipline_json(&r))
                        .map_err(|e| Status::internal(format!("export failed: {e}")))?;
                let xml = sigil_reports::export::cybertipline_xml(&r)
                    .map_err(|e| Status::internal(format!("export failed: {e}")))?;
                Ok(Response::new(proto::ExportReportResponse { json, xml }))
            },
        )
        .await
    }
}
