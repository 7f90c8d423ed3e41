# Bad variables are refused at plan time, by the validation that names them.

mock_provider "aws" {
  source = "../../tests/aws-mock"
}

variables {
  operator_cidrs = ["203.0.113.7/32"]
  ssh_public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVzZXJAdGVzdGtleXRlc3RrZXl0ZXN0a2V5dGVzdA test@example"
}

run "operator_cidrs_rejects_the_whole_internet" {
  command = plan
  variables {
    operator_cidrs = ["203.0.113.7/32", "0.0.0.0/0"]
  }
  expect_failures = [var.operator_cidrs]
}

run "operator_cidrs_rejects_a_non_cidr" {
  command = plan
  variables {
    operator_cidrs = ["203.0.113.7"]
  }
  expect_failures = [var.operator_cidrs]
}

run "operator_cidrs_rejects_host_bits" {
  command = plan
  variables {
    operator_cidrs = ["203.0.113.7/24"]
  }
  expect_failures = [var.operator_cidrs]
}

run "operator_cidrs_rejects_empty" {
  command = plan
  variables {
    operator_cidrs = []
  }
  expect_failures = [var.operator_cidrs]
}

run "grafana_allowed_cidrs_rejects_a_non_cidr" {
  command = plan
  variables {
    grafana_allowed_cidrs = ["everyone"]
  }
  expect_failures = [var.grafana_allowed_cidrs]
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
    monitoring_servers = { monitoring = { components = ["prometheus", "alertmanager", "grafana"] } }
  }
  expect_failures = [var.monitoring_servers]
}

run "monitoring_servers_run_a_component_once" {
  command = plan
  variables {
    monitoring_servers = {
      a = { components = ["prometheus", "alertmanager"] }
      b = { components = ["prometheus", "grafana", "loki"] }
    }
  }
  expect_failures = [var.monitoring_servers]
}

run "monitoring_servers_reject_an_unknown_component" {
  command = plan
  variables {
    monitoring_servers = { monitoring = { components = ["prometheus", "alertmanager", "grafana", "loki", "elasticsearch"] } }
  }
  expect_failures = [var.monitoring_servers]
}

run "a_name_is_either_app_or_monitoring" {
  command = plan
  variables {
    app_servers = { monitoring = {} }
  }
  expect_failures = [var.monitoring_servers]
}
