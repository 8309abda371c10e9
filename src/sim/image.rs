//! The CRI ImageService of the sim: PullImage takes the configured pull delay, asks the simulated
//! registry (`registry.rs`) and records the image in the store; the other methods read or drop
//! store records. Each method counts the call and waits the configured latency first. No state of
//! its own.

use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_server::ImageService;
use tonic::{Request, Response, Status};

use super::SimRuntime;
use super::registry;

type Answer<T> = Result<Response<T>, Status>;

fn reference(spec: Option<&cri::ImageSpec>) -> &str {
    spec.map(|spec| spec.image.as_str()).unwrap_or_default()
}

#[tonic::async_trait]
impl ImageService for SimRuntime {
    async fn list_images(
        &self,
        request: Request<cri::ListImagesRequest>,
    ) -> Answer<cri::ListImagesResponse> {
        self.begin("ListImages").await;
        let request = request.into_inner();
        let wanted = request
            .filter
            .as_ref()
            .map(|filter| reference(filter.image.as_ref()))
            .filter(|wanted| !wanted.is_empty());
        let images = self.store().images(wanted);
        Ok(Response::new(cri::ListImagesResponse { images }))
    }

    async fn image_status(
        &self,
        request: Request<cri::ImageStatusRequest>,
    ) -> Answer<cri::ImageStatusResponse> {
        self.begin("ImageStatus").await;
        let request = request.into_inner();
        let image = self.store().image(reference(request.image.as_ref()));
        Ok(Response::new(cri::ImageStatusResponse {
            image,
            ..cri::ImageStatusResponse::default()
        }))
    }

    async fn pull_image(
        &self,
        request: Request<cri::PullImageRequest>,
    ) -> Answer<cri::PullImageResponse> {
        self.begin("PullImage").await;
        let _in_progress = self.inner.journal.pull_started();
        let delay = self.inner.config.pull_delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let request = request.into_inner();
        let name = registry::normalise(reference(request.image.as_ref()))?;
        let required = self
            .inner
            .config
            .registry_credentials
            .as_ref()
            .map(|(user, password)| (user.as_str(), password.as_str()));
        registry::check_pull(&name, request.auth.as_ref(), required)?;
        let image_ref = self.store().add_image(name);
        tracing::debug!(%image_ref, "image pulled");
        Ok(Response::new(cri::PullImageResponse { image_ref }))
    }

    async fn remove_image(
        &self,
        request: Request<cri::RemoveImageRequest>,
    ) -> Answer<cri::RemoveImageResponse> {
        self.begin("RemoveImage").await;
        self.store()
            .remove_image(reference(request.into_inner().image.as_ref()));
        Ok(Response::new(cri::RemoveImageResponse {}))
    }

    async fn image_fs_info(
        &self,
        _request: Request<cri::ImageFsInfoRequest>,
    ) -> Answer<cri::ImageFsInfoResponse> {
        self.begin("ImageFsInfo").await;
        Ok(Response::new(cri::ImageFsInfoResponse::default()))
    }
}
