# The reachability policy of seed 002, as security groups:
#   fleet        - every server (app and monitoring): SSH from the operators; node
#                  exporter and log shipper from Prometheus and the operators.
#   prometheus   - from Grafana (datasource) and the operators.
#   alertmanager - from Prometheus (alert delivery), Grafana (datasource), operators.
#   loki         - pushes from every server of the fleet, and the operators.
#   grafana      - from grafana_allowed_cidrs, the operators, and Prometheus (scrape).
#   victoriametrics - from Prometheus (remote_write, scrape), Grafana and the operators.
# Prometheus servers also scrape each other (replicas), and Alertmanager peers
# gossip among themselves (TCP and UDP) and with no one else.
# A server carries `fleet` plus the group of each component it runs, so the same
# rules hold whether the components share one server or have one each.

locals {
  groups = {
    fleet        = "Every server: SSH from operators; node exporter and log shipper from Prometheus and operators"
    prometheus   = "Prometheus servers: port ${var.ports.prometheus} from Grafana, Prometheus and operators"
    alertmanager = "Alertmanager servers: port ${var.ports.alertmanager} from Prometheus, Grafana and operators; cluster ${var.ports.alertmanager_cluster} from the peers"
    loki         = "Loki servers: push on port ${var.ports.loki} from the fleet and operators"
    grafana      = "Grafana servers: port ${var.ports.grafana} from grafana_allowed_cidrs, operators and Prometheus"
    # Declared like the others so that the map keeps one type.
    victoriametrics = "VictoriaMetrics servers: port ${var.ports.victoriametrics} from Prometheus, Grafana and operators"
  }

  # target group => service => who may connect (other groups by name, and
  # CIDRs), over which protocols.
  tcp = ["tcp"]
  policy = {
    fleet = {
      ssh           = { port = var.ports.ssh, protocols = local.tcp, from_groups = [], cidrs = var.operator_cidrs }
      node_exporter = { port = var.ports.node_exporter, protocols = local.tcp, from_groups = ["prometheus"], cidrs = var.operator_cidrs }
      log_shipper   = { port = var.ports.log_shipper, protocols = local.tcp, from_groups = ["prometheus"], cidrs = var.operator_cidrs }
    }
    prometheus = {
      # Replicas scrape each other, so a dead one is noticed.
      prometheus = { port = var.ports.prometheus, protocols = local.tcp, from_groups = ["grafana", "prometheus"], cidrs = var.operator_cidrs }
    }
    alertmanager = {
      alertmanager = { port = var.ports.alertmanager, protocols = local.tcp, from_groups = ["prometheus", "grafana"], cidrs = var.operator_cidrs }
      # memberlist gossip: the peers only, never an operator or the internet.
      alertmanager_cluster = { port = var.ports.alertmanager_cluster, protocols = ["tcp", "udp"], from_groups = ["alertmanager"], cidrs = [] }
    }
    loki = {
      loki = { port = var.ports.loki, protocols = local.tcp, from_groups = ["fleet"], cidrs = var.operator_cidrs }
    }
    grafana = {
      grafana = { port = var.ports.grafana, protocols = local.tcp, from_groups = ["prometheus"], cidrs = distinct(concat(var.operator_cidrs, var.grafana_allowed_cidrs)) }
    }
    victoriametrics = {
      victoriametrics = { port = var.ports.victoriametrics, protocols = local.tcp, from_groups = ["prometheus", "grafana"], cidrs = var.operator_cidrs }
    }
  }

  # One security group rule per (group, service, protocol, source); keys stay
  # the same when unrelated sources are added, so a change touches only its
  # own rules. TCP rules carry no protocol in their key (as before UDP came).
  ingress = merge(
    merge([
      for group, services in local.policy : merge(flatten([
        for service, rule in services : [
          for protocol in rule.protocols : {
            for source in rule.from_groups : "${group}/${service}/${protocol == "tcp" ? "" : "${protocol}/"}sg:${source}" => {
              group = group, service = service, port = rule.port, protocol = protocol, from_group = source, cidr = null
            }
          }
        ]
      ])...)
    ]...),
    merge([
      for group, services in local.policy : merge(flatten([
        for service, rule in services : [
          for protocol in rule.protocols : {
            for cidr in rule.cidrs : "${group}/${service}/${protocol == "tcp" ? "" : "${protocol}/"}${cidr}" => {
              group = group, service = service, port = rule.port, protocol = protocol, from_group = null, cidr = cidr
            }
          }
        ]
      ])...)
    ]...),
  )
}

resource "aws_security_group" "this" {
  for_each = local.groups
  # checkov:skip=CKV2_AWS_5: attached to the instances by the root module (security_group_ids output -> modules/server); checkov's graph does not follow for_each groups across module outputs.

  name_prefix            = "${var.name}-${each.key}-"
  description            = each.value
  vpc_id                 = var.vpc_id
  revoke_rules_on_delete = true

  tags = { Name = "${var.name}-${each.key}" }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "this" {
  for_each = local.ingress

  security_group_id            = aws_security_group.this[each.value.group].id
  description                  = "${each.value.service}${each.value.protocol == "tcp" ? "" : " (${each.value.protocol})"} from ${each.value.from_group != null ? "${each.value.from_group} servers" : each.value.cidr}"
  ip_protocol                  = each.value.protocol
  from_port                    = each.value.port
  to_port                      = each.value.port
  referenced_security_group_id = each.value.from_group != null ? aws_security_group.this[each.value.from_group].id : null
  cidr_ipv4                    = each.value.cidr

  tags = { Name = "${var.name}-${replace(each.key, "/", "-")}" }
}

# Egress, on the fleet group that every server carries: anything inside the VPC
# (the receiving side's rules decide), and the listed TCP ports to the internet.
resource "aws_vpc_security_group_egress_rule" "vpc" {
  security_group_id = aws_security_group.this["fleet"].id
  description       = "Anything inside the VPC: scrapes, log pushes, alerts, DNS"
  ip_protocol       = "-1"
  cidr_ipv4         = var.vpc_cidr

  tags = { Name = "${var.name}-fleet-egress-vpc" }
}

resource "aws_vpc_security_group_egress_rule" "internet" {
  for_each = toset([for p in var.internet_egress_tcp_ports : tostring(p)])

  security_group_id = aws_security_group.this["fleet"].id
  description       = "TCP ${each.key} to the internet (packages, Slack webhook, Grafana plugins)"
  ip_protocol       = "tcp"
  from_port         = tonumber(each.key)
  to_port           = tonumber(each.key)
  cidr_ipv4         = "0.0.0.0/0"

  tags = { Name = "${var.name}-fleet-egress-${each.key}" }
}
