//! kplan.v1.WatchService: approve and abandon plans, read their status, and
//! follow it (`WatchPlan`). The work is in [`crate::watch`]; this converts.

use std::pin::Pin;
use std::sync::Arc;

use kplan_proto::v1;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::auth::caller;
use super::status;
use crate::watch::{LifecycleChange, Watcher};

#[derive(Debug, Clone)]
pub struct WatchApi {
    watcher: Arc<Watcher>,
}

impl WatchApi {
    pub fn new(watcher: Arc<Watcher>) -> Self {
        WatchApi { watcher }
    }
}

fn lifecycle_response(change: LifecycleChange) -> v1::PlanLifecycleResponse {
    v1::PlanLifecycleResponse { lifecycle: Some(change.record.lifecycle.into()), superseded: change.superseded }
}

fn plan_id(id: &str) -> Result<String, Status> {
    if id.trim().is_empty() {
        return Err(Status::invalid_argument("missing field plan_id"));
    }
    Ok(id.to_string())
}

type StatusStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<v1::PlanStatus, Status>> + Send>>;

#[tonic::async_trait]
impl v1::watch_service_server::WatchService for WatchApi {
    async fn approve_plan(
        &self,
        request: Request<v1::ApprovePlanRequest>,
    ) -> Result<Response<v1::PlanLifecycleResponse>, Status> {
        let who = caller(&request);
        let id = plan_id(&request.into_inner().plan_id)?;
        let watcher = self.watcher.clone();
        // Stored and flushed before this returns.
        let change = tokio::task::spawn_blocking(move || watcher.approve(&id, &who))
            .await
            .map_err(status::join_error)?
            .map_err(status::from_watch)?;
        Ok(Response::new(lifecycle_response(change)))
    }

    async fn abandon_plan(
        &self,
        request: Request<v1::AbandonPlanRequest>,
    ) -> Result<Response<v1::PlanLifecycleResponse>, Status> {
        let who = caller(&request);
        let id = plan_id(&request.into_inner().plan_id)?;
        let watcher = self.watcher.clone();
        let change = tokio::task::spawn_blocking(move || watcher.abandon(&id, &who))
            .await
            .map_err(status::join_error)?
            .map_err(status::from_watch)?;
        Ok(Response::new(lifecycle_response(change)))
    }

    async fn get_plan_status(
        &self,
        request: Request<v1::GetPlanStatusRequest>,
    ) -> Result<Response<v1::PlanStatus>, Status> {
        let id = plan_id(&request.into_inner().plan_id)?;
        let watcher = self.watcher.clone();
        let status = tokio::task::spawn_blocking(move || watcher.status(&id))
            .await
            .map_err(status::join_error)?
            .map_err(status::from_watch)?;
        Ok(Response::new(status.into()))
    }

    async fn list_plan_lifecycles(
        &self,
        _request: Request<v1::ListPlanLifecyclesRequest>,
    ) -> Result<Response<v1::ListPlanLifecyclesResponse>, Status> {
        let watcher = self.watcher.clone();
        let records = tokio::task::spawn_blocking(move || watcher.lifecycles())
            .await
            .map_err(status::join_error)?
            .map_err(status::from_store)?;
        let plans = records
            .into_iter()
            .map(|(plan_id, record)| v1::PlanLifecycleEntry {
                plan_id,
                lifecycle: Some(record.lifecycle.into()),
                health: kplan_proto::convert::health_status_to_wire(record.health.status),
            })
            .collect();
        Ok(Response::new(v1::ListPlanLifecyclesResponse { plans }))
    }

    type WatchPlanStream = StatusStream;

    async fn watch_plan(&self, request: Request<v1::WatchPlanRequest>) -> Result<Response<StatusStream>, Status> {
        let id = plan_id(&request.into_inner().plan_id)?;
        let mut changes = self.watcher.subscribe();
        let read = {
            let watcher = self.watcher.clone();
            move |id: String| {
                let watcher = watcher.clone();
                async move {
                    tokio::task::spawn_blocking(move || watcher.status(&id))
                        .await
                        .map_err(status::join_error)?
                        .map_err(status::from_watch)
                }
            }
        };
        // The first status now: an unknown plan is NOT_FOUND, not an empty stream.
        let first = read(id.clone()).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let mut last = first.clone();
            if tx.send(Ok(first.into())).await.is_err() {
                return;
            }
            loop {
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { return },
                    () = tx.closed() => return,
                }
                match read(id.clone()).await {
                    Ok(status) if status == last => {}
                    Ok(status) => {
                        last = status.clone();
                        if tx.send(Ok(status.into())).await.is_err() {
                            return;
                        }
                    }
                    Err(err) => {
                        let _ = tx.send(Err(err)).await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
