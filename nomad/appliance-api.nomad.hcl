# The sqlrs appliance API as a Nomad service job (for sites that run the appliance on Nomad).
# Configuration comes from SQLRS_* variables; secrets from Nomad Variables, never from this file.
job "sqlrs-appliance-api" {
  namespace   = "sqlrs"
  type        = "service"
  datacenters = ["dc1"]

  group "api" {
    count = 2

    network {
      port "http" { to = 7433 }
    }

    service {
      name     = "sqlrs-api"
      port     = "http"
      provider = "nomad"
      check {
        type     = "http"
        path     = "/v1/health"
        interval = "10s"
        timeout  = "2s"
      }
    }

    restart {
      attempts = 3
      interval = "5m"
      delay    = "10s"
      mode     = "delay"
    }

    task "api" {
      driver = "docker"

      config {
        image   = "sqlrs/appliance:latest"
        command = "sqlrs-appliance"
        # The API and the reconciler; workers run as their own job (appliance-worker), and the
        # Control DB is migrated beforehand (`sqlrs-appliance migrate`).
        args    = ["api", "--listen", "0.0.0.0:7433"]
        ports   = ["http"]
      }

      # Database URL, Redis URL, S3 and Nomad tokens from Nomad Variables at nomad/jobs/sqlrs-appliance-api.
      template {
        destination = "secrets/sqlrs.env"
        env         = true
        data        = <<-EOT
          {{- with nomadVar "nomad/jobs/sqlrs-appliance-api" -}}
          SQLRS_DATABASE_URL={{ .database_url }}
          SQLRS_REDIS_URL={{ .redis_url }}
          SQLRS_S3_SECRET_KEY={{ .s3_secret_key }}
          {{- end }}
        EOT
      }

      env {
        SQLRS_RUNTIME         = "nomad"
        SQLRS_NOMAD_NAMESPACE = "sqlrs"
      }

      resources {
        cpu    = 500
        memory = 512
      }
    }
  }
}
