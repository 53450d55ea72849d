//! The VPC bridge network: one network, `invpc2_docker`, whose IPAM subnet is the one the
//! latest spec asked for.

use bollard::Docker;
use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest};

use crate::create::VPC_NETWORK;

/// Makes sure the VPC network exists with exactly `subnet`, recreating it when its subnet
/// differs (which fails while containers are attached to the old one).
pub async fn ensure_vpc(docker: &Docker, subnet: &str) -> Result<(), bollard::errors::Error> {
    match docker.inspect_network(VPC_NETWORK, None).await {
        Ok(network) => {
            let subnets: Vec<String> = network
                .ipam
                .and_then(|i| i.config)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|c| c.subnet)
                .collect();
            if subnets == [subnet] {
                return Ok(());
            }
            tracing::info!(
                network = VPC_NETWORK,
                ?subnets,
                subnet,
                "recreating with a new subnet"
            );
            docker.remove_network(VPC_NETWORK).await?;
        }
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => {}
        Err(e) => return Err(e),
    }
    docker
        .create_network(NetworkCreateRequest {
            name: VPC_NETWORK.into(),
            driver: Some("bridge".into()),
            ipam: Some(Ipam {
                driver: Some("default".into()),
                config: Some(vec![IpamConfig {
                    subnet: Some(subnet.into()),
                    ..IpamConfig::default()
                }]),
                options: None,
            }),
            ..NetworkCreateRequest::default()
        })
        .await?;
    Ok(())
}
