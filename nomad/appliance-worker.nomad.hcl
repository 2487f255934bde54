# The sqlrs RQ workers as a Nomad service job. Workers run volume operations (clone, snapshot,
# send/receive) on the host that holds the store, so they are pinned to that node, run
# privileged (zfs/btrfs/LVM need it) and see the store at the same path as the host, because
# the instance jobs they submit bind-mount clone paths by their host path.
job "sqlrs-appliance-worker" {
  namespace   = "sqlrs"
  type        = "service"
  datacenters = ["dc1"]

  constraint {
    attribute = "${meta.sqlrs_store}"
    value     = "true"
  }

  group "worker" {
    count = 1

    restart {
      attempts = 3
      interval = "5m"
      delay    = "10s"
      mode     = "delay"
    }

    task "worker" {
      driver = "docker"

      config {
        image        = "sqlrs/appliance:latest"
        command      = "sqlrs-appliance"
        args         = ["worker"]
        network_mode = "host"
        privileged   = true

        mount {
          type     = "bind"
          source   = "/var/lib/sqlrs-appliance"
          target   = "/var/lib/sqlrs-appliance"
          readonly = false
          bind_options {
            propagation = "rshared"
          }
        }
      }

      template {
        destination = "secrets/sqlrs.env"
        env         = true
        data        = <<-EOT
          {{- with nomadVar "nomad/jobs/sqlrs-appliance-worker" -}}
          SQLRS_DATABASE_URL={{ .database_url }}
          SQLRS_REDIS_URL={{ .redis_url }}
          SQLRS_NOMAD_TOKEN={{ .nomad_token }}
          {{- end }}
        EOT
      }

      env {
        SQLRS_RUNTIME         = "nomad"
        SQLRS_NOMAD_ADDR      = "http://${attr.unique.network.ip-address}:4646"
        SQLRS_NOMAD_NAMESPACE = "sqlrs"
        SQLRS_NOMAD_NODE_ID   = "${node.unique.id}"
      }

      resources {
        cpu    = 1000
        memory = 1024
      }
    }
  }
}
