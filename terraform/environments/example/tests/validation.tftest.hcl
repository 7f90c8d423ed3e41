# Bad variables are refused at plan time, by the validation that names them.
# (operator_cidrs and grafana_allowed_cidrs are checked in
# modules/monitoring_firewall/tests; the messages a user reads from this root,
# for those too, in ../../tests/validation_messages.sh.)

mock_provider "aws" {
  source = "../../tests/aws-mock"
}

variables {
  operator_cidrs = ["203.0.113.7/32"]
  ssh_public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVzZXJAdGVzdGtleXRlc3RrZXl0ZXN0a2V5dGVzdA test@example"
}

run "ssh_public_key_rejects_a_private_key" {
  command = plan
  variables {
    ssh_public_key = "-----BEGIN OPENSSH PRIVATE KEY-----"
  }
  expect_failures = [var.ssh_public_key]
}

run "region_rejects_a_typo" {
  command = plan
  variables {
    region = "eu-central"
  }
  expect_failures = [var.region]
}

run "ami_id_rejects_a_name" {
  command = plan
  variables {
    ami_id = "debian-12"
  }
  expect_failures = [var.ami_id]
}

run "app_servers_reject_a_bad_hostname" {
  command = plan
  variables {
    app_servers = { Web_1 = {} }
  }
  expect_failures = [var.app_servers]
}

run "app_servers_reject_an_unknown_subnet" {
  command = plan
  variables {
    app_servers = { web-1 = { subnet = "b" } }
  }
  expect_failures = [var.app_servers]
}

run "app_servers_may_not_open_a_monitoring_port" {
  command = plan
  variables {
    app_servers = { web-1 = { public_tcp_ports = [443, 9100] } }
  }
  expect_failures = [var.app_servers]
}

run "monitoring_servers_need_every_component" {
  command = plan
  variables {
    monitoring_servers = { monitoring-1 = { components = ["prometheus", "alertmanager", "grafana"] } }
  }
  expect_failures = [var.monitoring_servers]
}

run "grafana_runs_once" {
  command = plan
  variables {
    monitoring_servers = {
      a = { components = ["prometheus", "alertmanager", "grafana"] }
      b = { components = ["prometheus", "grafana", "loki"] }
    }
  }
  expect_failures = [var.monitoring_servers]
}

run "victoriametrics_runs_once_at_most" {
  command = plan
  variables {
    monitoring_servers = {
      a = { components = ["prometheus", "alertmanager", "grafana", "loki", "victoriametrics"] }
      b = { components = ["victoriametrics"] }
    }
  }
  expect_failures = [var.monitoring_servers]
}

# Replicas and cluster peers are allowed: Prometheus and Alertmanager on several servers.
run "prometheus_and_alertmanager_may_run_on_several_servers" {
  command = plan
  variables {
    monitoring_servers = {
      a = { components = ["prometheus", "alertmanager", "grafana", "loki"] }
      b = { components = ["prometheus", "alertmanager"] }
    }
  }
}

run "monitoring_servers_reject_an_unknown_component" {
  command = plan
  variables {
    monitoring_servers = { monitoring-1 = { components = ["prometheus", "alertmanager", "grafana", "loki", "elasticsearch"] } }
  }
  expect_failures = [var.monitoring_servers]
}

run "a_name_is_either_app_or_monitoring" {
  command = plan
  variables {
    app_servers = { monitoring-1 = {} }
  }
  expect_failures = [var.monitoring_servers]
}

run "a_server_may_not_be_named_like_a_group" {
  command = plan
  variables {
    monitoring_servers = {
      prometheus   = { components = ["prometheus"] }
      alertmanager = { components = ["alertmanager", "grafana", "loki"] }
    }
  }
  expect_failures = [var.monitoring_servers]
}
