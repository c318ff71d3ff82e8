CREATE TABLE orders (
    region     VARCHAR(8)     NOT NULL,
    id         BIGINT         NOT NULL,
    customer   VARCHAR(100)   NOT NULL,
    amount     DECIMAL(12, 2),
    paid       BOOLEAN,
    score      DOUBLE,
    note       TEXT,
    photo      LONGBLOB,
    token      UUID,
    ordered_on DATE,
    ships_at   TIME(6),
    updated_at DATETIME(6),
    shipped_at TIMESTAMP(6) NULL,
    doc        JSON,
    total      DECIMAL(14, 2) AS (amount * 1.2) VIRTUAL,
    PRIMARY KEY (region, id)
);
